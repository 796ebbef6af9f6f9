"""A grpcio client (stubs generated here from proto/swin/v1/classifier.proto
with grpcio-tools) calling swin.v1.Classifier/Predict on swin-serve.

Sends the test images a few per call, checks every image gets top_k classes,
compares top-1 with POST /classify on the same images, and checks the status,
message and swin-code trailer of an unknown model, an empty request and an
expired deadline. Prints one JSON line.

    python check_grpcio_predict.py --http 127.0.0.1:8080 --grpc 127.0.0.1:8081 --data DIR --model swin-fmnist
"""

import argparse
import json
import os
import struct
import sys
import tempfile

import grpc
from grpc_tools import protoc

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def stubs(out_dir):
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    rc = protoc.main(
        [
            "protoc",
            f"-I{os.path.join(ROOT, 'proto')}",
            f"-I{include}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            "swin/v1/classifier.proto",
        ]
    )
    assert rc == 0, f"protoc failed with {rc}"
    sys.path.insert(0, out_dir)
    from swin.v1 import classifier_pb2, classifier_pb2_grpc

    return classifier_pb2, classifier_pb2_grpc


def read_images(d):
    blob = open(f"{d}/images.bin", "rb").read()
    images, off = [], 0
    while off < len(blob):
        (n,) = struct.unpack_from("<I", blob, off)
        images.append(blob[off + 4 : off + 4 + n])
        off += 4 + n
    return images, list(open(f"{d}/labels.u8", "rb").read())


def expect(fn, code, substring):
    try:
        fn()
    except grpc.RpcError as e:
        assert e.code() == code, f"{e.code()} ({e.details()}), expected {code}"
        assert substring in (e.details() or ""), f"details {e.details()!r} lack {substring!r}"
        trailer = dict(e.trailing_metadata() or ()).get("swin-code")
        return {"code": e.code().name, "details": e.details(), "swin_code": trailer}
    raise AssertionError(f"no error; expected {code}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--http", required=True)
    ap.add_argument("--grpc", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="swin-fmnist")
    ap.add_argument("--per-call", type=int, default=4)
    a = ap.parse_args()
    images, labels = read_images(a.data)
    with tempfile.TemporaryDirectory() as tmp:
        pb, pb_grpc = stubs(tmp)
        channel = grpc.insecure_channel(a.grpc, options=[("grpc.max_receive_message_length", 64 << 20)])
        stub = pb_grpc.ClassifierStub(channel)
        top1, seen_backend = [], set()
        for s in range(0, len(images), a.per_call):
            chunk = images[s : s + a.per_call]
            res = stub.Predict(pb.PredictRequest(images=chunk, model=a.model, top_k=3), timeout=60)
            assert res.model == a.model and len(res.predictions) == len(chunk), res
            for p in res.predictions:
                assert len(p.classes) == 3 and p.classes[0].score >= p.classes[1].score >= p.classes[2].score
                top1.append(p.classes[0].index)
            assert res.timings.total_ms > 0
            seen_backend.add((res.variant, res.backend))
        correct = sum(int(p == l) for p, l in zip(top1, labels))
        errors = {
            "unknown_model": expect(
                lambda: stub.Predict(pb.PredictRequest(images=images[:1], model="no-such-model")),
                grpc.StatusCode.NOT_FOUND,
                "Unknown model",
            ),
            "no_images": expect(
                lambda: stub.Predict(pb.PredictRequest(model=a.model)), grpc.StatusCode.INVALID_ARGUMENT, "no image"
            ),
            "bad_top_k": expect(
                lambda: stub.Predict(pb.PredictRequest(images=images[:1], model=a.model, top_k=1000)),
                grpc.StatusCode.INVALID_ARGUMENT,
                "top_k",
            ),
            "expired_deadline": expect(
                lambda: stub.Predict(pb.PredictRequest(images=images[:8], model=a.model), timeout=0.0005),
                grpc.StatusCode.DEADLINE_EXCEEDED,
                "",
            ),
        }
        assert errors["unknown_model"]["swin_code"] == "SWIN_MODEL_NOT_FOUND", errors
        channel.close()
    print(
        json.dumps(
            {
                "images": len(images),
                "accuracy": correct / len(images),
                "top1": top1,
                "served_by": sorted(map(list, seen_backend)),
                "errors": errors,
            }
        )
    )


if __name__ == "__main__":
    main()
