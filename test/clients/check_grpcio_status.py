"""A grpcio client reading swin-serve's standard gRPC error details: the
google.rpc.Status in grpc-status-details-bin, decoded with grpcio-status and
googleapis-common-protos, as any Python client would. Calls Predict twice on
a server the test arranged (one call refused for a full queue, one for an
unknown model) and prints one JSON line with what it read.

    python check_grpcio_status.py --grpc 127.0.0.1:8081
"""

import argparse
import json
import tempfile

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from check_grpcio_predict import stubs


def read_error(fn):
    try:
        fn()
    except grpc.RpcError as call:
        # from_call checks that the details' code and message equal the call's.
        status = rpc_status.from_call(call)
        out = {
            "code": call.code().name,
            "details": call.details(),
            "status_code": None,
            "error_info": None,
            "retry_delay_s": None,
        }
        if status is None:
            return out
        out["status_code"] = status.code
        for any_msg in status.details:
            if any_msg.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                any_msg.Unpack(info)
                out["error_info"] = {"reason": info.reason, "domain": info.domain, "metadata": dict(info.metadata)}
            elif any_msg.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                any_msg.Unpack(retry)
                out["retry_delay_s"] = retry.retry_delay.ToTimedelta().total_seconds()
        return out
    raise AssertionError("the call succeeded")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grpc", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pb, pb_grpc = stubs(tmp)
        with grpc.insecure_channel(a.grpc) as channel:
            stub = pb_grpc.ClassifierStub(channel)
            result = {
                "queue_full": read_error(
                    lambda: stub.Predict(pb.PredictRequest(images=[b"rgb:1,2,3"], model="fake"), timeout=10)
                ),
                "unknown_model": read_error(
                    lambda: stub.Predict(pb.PredictRequest(images=[b"rgb:1,2,3"], model="nope"), timeout=10)
                ),
            }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
