"""Triton's own Python client (tritonclient, HTTP and gRPC) against swin-serve.

Checks liveness, readiness and metadata, then classifies the same Fashion-MNIST
test images four ways and compares each with POST /classify on the same images:
  KServe HTTP  UINT8 [N,H,W,3] pixels (sharp-preprocessed by the test), binary tensors
  KServe HTTP  BYTES [N] PNG files, classification extension (top-1 strings)
  KServe gRPC  UINT8 [N,H,W,3] pixels, raw_input_contents
  KServe gRPC  BYTES [N] PNG files
and checks error statuses for a wrong shape, a wrong datatype, an unknown
model and an expired deadline. Prints one JSON line with the accuracies.

    python check_triton_clients.py --http 127.0.0.1:8080 --grpc 127.0.0.1:8081 --data DIR --model swin-fmnist
DIR holds images.bin (PNG files, each preceded by its uint32 LE length),
labels.u8 (one byte per image) and pixels.u8 (N x H x W x 3, the model's input).
"""

import argparse
import json
import struct
import sys
import time
import urllib.request

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def read_data(d):
    blob = open(f"{d}/images.bin", "rb").read()
    images, off = [], 0
    while off < len(blob):
        (n,) = struct.unpack_from("<I", blob, off)
        images.append(blob[off + 4 : off + 4 + n])
        off += 4 + n
    labels = np.frombuffer(open(f"{d}/labels.u8", "rb").read(), dtype=np.uint8)
    pixels = np.frombuffer(open(f"{d}/pixels.u8", "rb").read(), dtype=np.uint8)
    return images, labels, pixels


def classify_top1(http_url, model, png):
    req = urllib.request.Request(
        f"http://{http_url}/classify?model={model}&top_k=1",
        data=png,
        headers={"content-type": "image/png"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        body = json.loads(r.read())
    p = body["predictions"][0]
    first = p[0] if isinstance(p, list) else p["classes"][0]
    return first["index"]


def expect_error(fn, status_substring, message_substring):
    try:
        fn()
    except InferenceServerException as e:
        assert status_substring in str(e.status()), f"status {e.status()!r}, expected {status_substring}: {e.message()}"
        assert message_substring in e.message(), f"message {e.message()!r} lacks {message_substring!r}"
        return e.message()
    raise AssertionError(f"no error; expected {status_substring}")


def batches(n, size):
    for s in range(0, n, size):
        yield s, min(n, s + size)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--http", required=True)
    ap.add_argument("--grpc", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="swin-fmnist")
    ap.add_argument("--batch", type=int, default=8)
    a = ap.parse_args()
    images, labels, pixels = read_data(a.data)
    n = len(images)

    hc = httpclient.InferenceServerClient(url=a.http, network_timeout=120)
    gc = grpcclient.InferenceServerClient(url=a.grpc)

    # Health and metadata, both transports.
    assert hc.is_server_live() and hc.is_server_ready() and hc.is_model_ready(a.model)
    assert gc.is_server_live() and gc.is_server_ready() and gc.is_model_ready(a.model)
    md = hc.get_model_metadata(a.model)
    inp = md["inputs"][0]
    assert inp["datatype"] == "UINT8" and len(inp["shape"]) == 4 and inp["shape"][0] == -1 and inp["shape"][3] == 3, md
    h, w = inp["shape"][1], inp["shape"][2]
    in_name = inp["name"]
    out_name = md["outputs"][0]["name"]
    assert pixels.size == n * h * w * 3, f"pixels.u8 holds {pixels.size} bytes, not {n}x{h}x{w}x3"
    pixels = pixels.reshape(n, h, w, 3)
    gmd = gc.get_model_metadata(a.model)
    assert gmd.name == a.model and gmd.inputs[0].name == in_name and list(gmd.inputs[0].shape) == [-1, h, w, 3], gmd
    smd = hc.get_server_metadata()
    assert smd["name"] == "swin-serve" and "classification" in smd["extensions"], smd
    gcfg = gc.get_model_config(a.model)
    assert gcfg.config.max_batch_size > 0 and list(gcfg.config.input[0].dims) == [h, w, 3], gcfg

    # The reference: /classify top-1 per image.
    ref = np.array([classify_top1(a.http, a.model, png) for png in images])

    def http_uint8():
        out = []
        for s, e in batches(n, a.batch):
            t = httpclient.InferInput(in_name, [e - s, h, w, 3], "UINT8")
            t.set_data_from_numpy(pixels[s:e], binary_data=True)
            r = hc.infer(a.model, [t], outputs=[httpclient.InferRequestedOutput(out_name, binary_data=True)])
            logits = r.as_numpy(out_name)
            assert logits.shape == (e - s, md["outputs"][0]["shape"][1]), logits.shape
            out.extend(logits.argmax(1))
        return np.array(out)

    def http_bytes_classification():
        out = []
        for s, e in batches(n, a.batch):
            t = httpclient.InferInput(in_name, [e - s], "BYTES")
            t.set_data_from_numpy(np.array(images[s:e], dtype=np.object_), binary_data=True)
            r = hc.infer(
                a.model,
                [t],
                outputs=[httpclient.InferRequestedOutput("probabilities", binary_data=True, class_count=1)],
            )
            # "score:index:label", one per image.
            out.extend(int(v.decode().split(":")[1]) for v in r.as_numpy("probabilities").reshape(-1))
        return np.array(out)

    def grpc_uint8():
        out = []
        for s, e in batches(n, a.batch):
            t = grpcclient.InferInput(in_name, [e - s, h, w, 3], "UINT8")
            t.set_data_from_numpy(pixels[s:e])
            r = gc.infer(a.model, [t], outputs=[grpcclient.InferRequestedOutput(out_name)])
            out.extend(r.as_numpy(out_name).argmax(1))
        return np.array(out)

    def grpc_bytes():
        out = []
        for s, e in batches(n, a.batch):
            t = grpcclient.InferInput(in_name, [e - s], "BYTES")
            t.set_data_from_numpy(np.array(images[s:e], dtype=np.object_))
            r = gc.infer(a.model, [t], outputs=[grpcclient.InferRequestedOutput(out_name, class_count=1)])
            out.extend(int(v.decode().split(":")[1]) for v in r.as_numpy(out_name).reshape(-1))
        return np.array(out)

    result = {
        "images": n,
        "input": f"{in_name} UINT8 [N,{h},{w},3]",
        "classify_accuracy": float((ref == labels).mean()),
        "classify_top1": [int(x) for x in ref],
    }
    for name, fn in [
        ("kserve_http_uint8", http_uint8),
        ("kserve_http_bytes_classification", http_bytes_classification),
        ("kserve_grpc_uint8", grpc_uint8),
        ("kserve_grpc_bytes_classification", grpc_bytes),
    ]:
        t0 = time.time()
        pred = fn()
        result[name] = {
            "accuracy": float((pred == labels).mean()),
            "top1_agrees_with_classify": int((pred == ref).sum()),
            "seconds": round(time.time() - t0, 2),
        }

    # Bad requests through tritonclient: status and message.
    bad = grpcclient.InferInput(in_name, [1, h + 1, w, 3], "UINT8")
    bad.set_data_from_numpy(np.zeros((1, h + 1, w, 3), np.uint8))
    errors = {
        "grpc_wrong_shape": expect_error(
            lambda: gc.infer(a.model, [bad]), "INVALID_ARGUMENT", f"has shape [1,{h + 1},{w},3]"
        )
    }
    badt = httpclient.InferInput(in_name, [1, h, w, 3], "FP32")
    badt.set_data_from_numpy(np.zeros((1, h, w, 3), np.float32), binary_data=True)
    errors["http_wrong_datatype"] = expect_error(lambda: hc.infer(a.model, [badt]), "400", "has datatype FP32")
    ok = grpcclient.InferInput(in_name, [1, h, w, 3], "UINT8")
    ok.set_data_from_numpy(pixels[:1])
    errors["grpc_unknown_model"] = expect_error(lambda: gc.infer("no-such-model", [ok]), "NOT_FOUND", "Unknown model")
    errors["grpc_expired_deadline"] = expect_error(
        lambda: gc.infer(a.model, [ok], client_timeout=0.0005), "DEADLINE_EXCEEDED", ""
    )
    result["errors"] = errors
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
