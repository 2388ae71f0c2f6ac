#!/usr/bin/python3
"""Explores a gRPC server's API through server reflection (what `grpcurl list/describe` does).

drgate serves grpc.reflection.v1alpha; Debian 12 packages neither grpcurl nor grpc_cli, so this
small client uses python3-grpcio and the reflection proto of the grpc-proto package.

    /usr/bin/python3 reflect.py --server 127.0.0.1:50051 list
    /usr/bin/python3 reflect.py --server 127.0.0.1:50051 describe drgate.v1.DrBackupService
    /usr/bin/python3 reflect.py --server 127.0.0.1:50051 describe drgate.v1.TriggerBackupRequest

Reflection needs no token, also with auth.mode: tokens.
"""
import argparse
import os
import sys

import grpc

import drgate_stubs


class Reflection:
    def __init__(self, channel, timeout):
        from reflection_stubs.v1alpha import reflection_pb2, reflection_pb2_grpc
        self.pb = reflection_pb2
        self.stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        self.timeout = timeout

    def ask(self, **request):
        responses = self.stub.ServerReflectionInfo(
            iter([self.pb.ServerReflectionRequest(**request)]), timeout=self.timeout)
        response = next(iter(responses))
        if response.HasField("error_response"):
            e = response.error_response
            raise LookupError(f"reflection error {e.error_code}: {e.error_message}")
        return response

    def services(self):
        return sorted(s.name for s in self.ask(list_services="").list_services_response.service)

    def pool_for(self, symbol):
        """A DescriptorPool holding the file that defines symbol and every file it imports."""
        from google.protobuf import descriptor_pb2, descriptor_pool
        files = {}
        todo = [("symbol", symbol)]
        while todo:
            kind, name = todo.pop()
            r = self.ask(file_containing_symbol=name) if kind == "symbol" else self.ask(
                file_by_filename=name)
            for raw in r.file_descriptor_response.file_descriptor_proto:
                fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
                if fd.name not in files:
                    files[fd.name] = fd
                    todo += [("file", d) for d in fd.dependency if d not in files]
        pool = descriptor_pool.DescriptorPool()
        added = set()

        def add(name):  # imports first
            if name in added:
                return
            added.add(name)
            for dep in files[name].dependency:
                add(dep)
            pool.Add(files[name])

        for name in files:
            add(name)
        return pool


def describe(pool, symbol):
    try:
        svc = pool.FindServiceByName(symbol)
    except KeyError:
        svc = None
    if svc is not None:
        print(f"service {svc.full_name} {{")
        for m in svc.methods:
            stream_in = "stream " if m.client_streaming else ""
            stream_out = "stream " if m.server_streaming else ""
            print(f"  rpc {m.name}({stream_in}{m.input_type.full_name}) returns "
                  f"({stream_out}{m.output_type.full_name});")
        print("}")
        return
    for find, kind in ((pool.FindMessageTypeByName, "message"), (pool.FindEnumTypeByName, "enum")):
        try:
            d = find(symbol)
        except KeyError:
            continue
        print(f"{kind} {d.full_name} {{")
        if kind == "enum":
            for v in d.values:
                print(f"  {v.name} = {v.number};")
        else:
            for f in d.fields:
                t = (f.message_type or f.enum_type)
                type_name = t.full_name if t else {
                    1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 8: "bool",
                    9: "string", 12: "bytes", 13: "uint32"}.get(f.type, f"type{f.type}")
                label = "repeated " if f.label == f.LABEL_REPEATED else ""
                print(f"  {label}{type_name} {f.name} = {f.number};")
        print("}")
        return
    raise LookupError(f"{symbol}: not a service, message or enum")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", default=os.environ.get("DRGATE_SERVER", "127.0.0.1:50051"))
    ap.add_argument("--ca-file", default="", help="TLS: verify the server against this PEM CA")
    ap.add_argument("--timeout", type=float, default=10.0, help="deadline of each call, seconds")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the services")
    d = sub.add_parser("describe", help="show a service, message or enum")
    d.add_argument("symbol", help="fully qualified, e.g. drgate.v1.DrBackupService")
    args = ap.parse_args()

    drgate_stubs.load()
    if args.ca_file:
        with open(args.ca_file, "rb") as f:
            channel = grpc.secure_channel(args.server, grpc.ssl_channel_credentials(f.read()))
    else:
        channel = grpc.insecure_channel(args.server)
    try:
        r = Reflection(channel, args.timeout)
        if args.command == "list":
            print("\n".join(r.services()))
        else:
            describe(r.pool_for(args.symbol), args.symbol)
    except grpc.RpcError as e:
        print(f"reflect: {e.code().name}: {e.details()}", file=sys.stderr)
        return 4
    except LookupError as e:
        print(f"reflect: {e}", file=sys.stderr)
        return 3
    finally:
        channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
