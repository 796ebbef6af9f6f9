"""Triton's own clients against our repository extension (test/kserve-repository-clients.test.ts).

    check_triton_repository.py HTTP_URL GRPC_URL MODEL

Index, unload and load over tritonclient.http and tritonclient.grpc, as a
Triton user would call them; prints what each step saw as one JSON object.
"""

import json
import sys

import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def grpc_index(g):
    return g.get_model_repository_index(as_json=True).get("models", [])


def main():
    http_url, grpc_url, model = sys.argv[1:4]
    h = httpclient.InferenceServerClient(http_url)
    g = grpcclient.InferenceServerClient(grpc_url)
    out = {"http_index": h.get_model_repository_index(), "grpc_index": grpc_index(g)}
    h.unload_model(model)
    out["after_http_unload"] = h.get_model_repository_index()
    out["ready_after_unload"] = h.is_model_ready(model)
    g.load_model(model)
    out["after_grpc_load"] = grpc_index(g)
    g.unload_model(model)
    try:
        out["grpc_ready_after_grpc_unload"] = g.is_model_ready(model)
    except InferenceServerException as e:  # an unloaded model is unknown, as in Triton
        out["grpc_ready_after_grpc_unload"] = e.status()
    h.load_model(model)
    out["ready_after_http_load"] = h.is_model_ready(model)
    try:
        h.load_model("no-such-model")
        out["unknown_load"] = "accepted"
    except InferenceServerException as e:
        out["unknown_load"] = e.message()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
