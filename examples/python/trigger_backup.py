#!/usr/bin/python3
"""Triggers a DR backup through drgate and prints the job id (only that, on stdout).

Runs with Debian's /usr/bin/python3 and its python3-grpcio and python3-protobuf; the API's modules
are generated at start (see drgate_stubs.py). Progress and errors go to stderr.

    /usr/bin/python3 trigger_backup.py --server 127.0.0.1:50051 --commcell prod --type full \
        --request-id "change-4711"

Exit codes: 0 triggered (or found again with the same --request-id), 2 usage error,
3 drgate refused the request, 4 drgate unavailable or the deadline passed.
"""
import argparse
import os
import sys

import grpc

import drgate_stubs

UNAVAILABLE_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", default=os.environ.get("DRGATE_SERVER", "127.0.0.1:50051"),
                    help="drgate's gRPC address HOST:PORT ($DRGATE_SERVER when set)")
    ap.add_argument("--commcell", default="",
                    help="CommCell (may be omitted when drgate serves exactly one)")
    ap.add_argument("--type", choices=["full", "differential"], default="full")
    ap.add_argument("--compress", action="store_true")
    ap.add_argument("--request-id", default="",
                    help="idempotency key (at most 36 characters): the same id answers the same job")
    ap.add_argument("--token-file", default=os.environ.get("DRGATE_TOKEN_FILE", ""),
                    help="bearer token file (auth.mode: tokens)")
    ap.add_argument("--ca-file", default="", help="TLS: verify drgate against this PEM CA")
    ap.add_argument("--timeout", type=float, default=30.0, help="deadline of the call, seconds")
    args = ap.parse_args()

    drgate_stubs.load()
    from drgate.v1 import drgate_pb2, drgate_pb2_grpc

    metadata = []
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as f:
            metadata.append(("authorization", "Bearer " + f.read().strip()))
    if args.ca_file:
        with open(args.ca_file, "rb") as f:
            channel = grpc.secure_channel(args.server, grpc.ssl_channel_credentials(f.read()))
    else:
        channel = grpc.insecure_channel(args.server)

    stub = drgate_pb2_grpc.DrBackupServiceStub(channel)
    request = drgate_pb2.TriggerBackupRequest(
        commcell=args.commcell,
        backup_type=drgate_pb2.BACKUP_TYPE_FULL if args.type == "full"
        else drgate_pb2.BACKUP_TYPE_DIFFERENTIAL,
        compression=args.compress,
        request_id=args.request_id)
    try:
        response = stub.TriggerBackup(request, timeout=args.timeout, metadata=metadata)
    except grpc.RpcError as e:
        reason, meta = drgate_stubs.error_reason(e)
        print(f"trigger_backup: TriggerBackup failed: {e.code().name} {reason}: {e.details()}"
              + (f" {meta}" if meta else ""), file=sys.stderr)
        return 4 if e.code() in UNAVAILABLE_CODES else 3
    finally:
        channel.close()

    job = response.job
    print(f"trigger_backup: job {job.job_id} on {job.commcell}: "
          f"{drgate_pb2.JobState.Name(job.state)}"
          + (" (deduplicated: an earlier call's job)" if response.deduplicated else ""),
          file=sys.stderr)
    print(job.job_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
