"""Generates the Python modules of drgate's API at run time and makes them importable.

Debian 12 ships grpcio and protobuf for /usr/bin/python3 (python3-grpcio, python3-protobuf) and
the code generators as programs: protoc (protobuf-compiler) and grpc_python_plugin
(protobuf-compiler-grpc). Nothing generated is committed: the modules are written to a folder
(a temporary one unless DRGATE_STUBS_DIR names one to reuse) that is put on sys.path.

    import drgate_stubs
    drgate_stubs.load()
    from drgate.v1 import drgate_pb2, drgate_pb2_grpc
"""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.environ.get("DRGATE_PROTO_DIR", os.path.join(HERE, "..", "..", "proto"))
# google/rpc/{status,error_details}.proto and google/api/{http,annotations}.proto, which
# drgate.proto imports for its HTTP routes (golang-github-gogo-googleapis-dev)
GOOGLEAPIS_DIR = "/usr/share/gocode/src/github.com/gogo/googleapis"
# grpc/reflection/v1alpha/reflection.proto (grpc-proto). Its modules cannot live under `grpc`
# (grpcio's own package), so the file is compiled as reflection_stubs/v1alpha/reflection.proto:
#   from reflection_stubs.v1alpha import reflection_pb2, reflection_pb2_grpc
REFLECTION_PROTO = "/usr/share/grpc-proto/grpc/reflection/v1alpha/reflection.proto"

# (include dir, file, with gRPC stubs)
PROTOS = [
    (PROTO_DIR, "drgate/v1/drgate.proto", True),
    (GOOGLEAPIS_DIR, "google/api/http.proto", False),
    (GOOGLEAPIS_DIR, "google/api/annotations.proto", False),
    (GOOGLEAPIS_DIR, "google/rpc/status.proto", False),
    (GOOGLEAPIS_DIR, "google/rpc/error_details.proto", False),
    (None, "reflection_stubs/v1alpha/reflection.proto", True),
]


def load():
    """Generates the modules (once per folder) and puts their folder first on sys.path."""
    out = os.environ.get("DRGATE_STUBS_DIR")
    if out:
        os.makedirs(out, exist_ok=True)
    else:
        out = tempfile.mkdtemp(prefix="drgate-stubs-")
        atexit.register(shutil.rmtree, out, True)
    if not os.path.exists(os.path.join(out, "drgate", "v1", "drgate_pb2.py")):
        src = os.path.join(out, "_proto", "reflection_stubs", "v1alpha")
        os.makedirs(src, exist_ok=True)
        shutil.copy(REFLECTION_PROTO, src)
        for include, proto, grpc in PROTOS:
            include = include or os.path.join(out, "_proto")
            cmd = ["protoc", f"--proto_path={include}", f"--proto_path={GOOGLEAPIS_DIR}",
                   f"--python_out={out}", proto]
            if grpc:
                cmd[2:2] = ["--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
                            f"--grpc_python_out={out}"]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"protoc {proto} failed ({r.returncode}): {r.stderr.strip()}")
    sys.path.insert(0, out)


def error_reason(error):
    """The google.rpc.ErrorInfo reason and metadata of a grpc.RpcError ("", {} when none)."""
    from google.rpc import error_details_pb2, status_pb2
    for key, value in (error.trailing_metadata() or ()):
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info.reason, dict(info.metadata)
    return "", {}
