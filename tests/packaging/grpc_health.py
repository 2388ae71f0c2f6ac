#!/usr/bin/python3
"""Asks grpc.health.v1.Health/Check on a plaintext gRPC port; exit 0 when the answer is SERVING.

usage: grpc_health.py HOST:PORT [SERVICE] [--wait SECONDS]
The request and the answer are encoded by hand (one string field; one enum field), so no stubs
are generated: HealthCheckResponse.status SERVING is field 1 = 1, the bytes 08 01.
"""
import sys
import time

import grpc


def check(target: str, service: str) -> bytes:
    request = b"" if not service else b"\n" + bytes([len(service)]) + service.encode()
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary("/grpc.health.v1.Health/Check",
                                   request_serializer=lambda b: b,
                                   response_deserializer=lambda b: b)
        return call(request, timeout=5)


def main() -> int:
    args = sys.argv[1:]
    wait = 0.0
    if "--wait" in args:
        i = args.index("--wait")
        wait = float(args[i + 1])
        del args[i:i + 2]
    target, service = args[0], (args[1] if len(args) > 1 else "")
    deadline = time.monotonic() + wait
    while True:
        try:
            answer = check(target, service)
            if answer == b"\x08\x01":
                print(f"grpc_health: {target} service '{service}': SERVING")
                return 0
            last = f"status bytes {answer.hex()}"
        except grpc.RpcError as e:
            last = f"{e.code().name}: {e.details()}"
        if time.monotonic() >= deadline:
            print(f"grpc_health: {target} service '{service}' not SERVING: {last}", file=sys.stderr)
            return 1
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
