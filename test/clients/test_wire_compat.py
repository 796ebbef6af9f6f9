"""Wire compatibility of proto/kserve/grpc_service.proto with Triton's client.

Compiles our .proto with grpcio-tools and compares, message by message, every
field we declare (number, wire type, label, message type) with the descriptors
shipped in tritonclient (which were generated from Triton's grpc_service.proto
and model_config.proto). A field we renumbered or retyped would break every
client silently; this makes it a test failure instead.

    .venv/bin/python test/clients/test_wire_compat.py
"""

import json
import os
import tempfile

from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_tools import protoc
from tritonclient.grpc import model_config_pb2, service_pb2

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def compile_ours(out_dir):
    """Our file's descriptor, in a pool of its own (Triton's already owns the inference.* names)."""
    proto_dir = os.path.join(ROOT, "proto")
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    out = os.path.join(out_dir, "ours.pb")
    rc = protoc.main(
        ["protoc", f"-I{proto_dir}", f"-I{include}", f"--descriptor_set_out={out}", "kserve/grpc_service.proto"]
    )
    assert rc == 0, f"protoc failed with {rc}"
    files = descriptor_pb2.FileDescriptorSet()
    with open(out, "rb") as f:
        files.ParseFromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for fd in files.file:
        pool.Add(fd)
    return pool.FindFileByName("kserve/grpc_service.proto")


def triton_message(full_name):
    for module in (service_pb2, model_config_pb2):
        try:
            return module.DESCRIPTOR.pool.FindMessageTypeByName(full_name)
        except KeyError:
            pass
    raise KeyError(full_name)


def compare(ours, theirs, problems):
    their_fields = {f.name: f for f in theirs.fields}
    for f in ours.fields:
        t = their_fields.get(f.name)
        if t is None:
            problems.append(f"{ours.full_name}.{f.name}: not in Triton's message")
            continue
        if (f.number, f.type) != (t.number, t.type):
            problems.append(
                f"{ours.full_name}.{f.name}: ours #{f.number} type {f.type}, Triton's #{t.number} type {t.type}"
            )
        if f.is_repeated != t.is_repeated:
            problems.append(f"{ours.full_name}.{f.name}: repeated {f.is_repeated} vs {t.is_repeated}")
        if f.message_type is not None and f.message_type.full_name != t.message_type.full_name:
            problems.append(
                f"{ours.full_name}.{f.name}: message {f.message_type.full_name} vs {t.message_type.full_name}"
            )
        if f.enum_type is not None:
            theirs_enum = {v.name: v.number for v in t.enum_type.values}
            for v in f.enum_type.values:
                if theirs_enum.get(v.name) != v.number:
                    problems.append(
                        f"{f.enum_type.full_name}.{v.name} = {v.number}, Triton's {theirs_enum.get(v.name)}"
                    )
    for nested in ours.nested_types:
        if nested.GetOptions().map_entry:
            continue
        compare(nested, triton_message(nested.full_name), problems)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        ours = compile_ours(tmp)
        problems = []
        checked = []
        for name, msg in ours.message_types_by_name.items():
            compare(msg, triton_message(msg.full_name), problems)
            checked.append(name)
        our_service = ours.services_by_name["GRPCInferenceService"]
        their_service = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
        their_methods = {m.name: m for m in their_service.methods}
        for m in our_service.methods:
            t = their_methods.get(m.name)
            if t is None or (m.input_type.full_name, m.output_type.full_name) != (
                t.input_type.full_name,
                t.output_type.full_name,
            ):
                problems.append(f"rpc {m.name}: signature differs from Triton's")
        print(
            json.dumps(
                {"messages_checked": len(checked), "rpcs_checked": len(our_service.methods), "problems": problems}
            )
        )
        assert not problems, "\n".join(problems)


if __name__ == "__main__":
    main()
