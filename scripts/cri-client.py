#!/usr/bin/python3
"""A minimal CRI client: drives a container runtime's RuntimeService over its socket the
way kubelet does, for scripts/containerd-e2e.sh.

It speaks gRPC through Debian's python3-grpcio and encodes the few CRI messages it needs
(runtime.v1, https://github.com/kubernetes/cri-api/blob/master/pkg/apis/runtime/v1/api.proto)
by hand: protobuf's wire format is small, and this way no .proto file, code generator or
Rust gRPC stack is needed. The Rust alternative (k8s-cri + tonic + tokio) compiled 100
crates in about 90 CPU-seconds per debug build and needs protoc; python3-grpcio installs
prebuilt.

Usage: cri-client.py --socket PATH COMMAND [ARGS]
  wait-network NAME       until Status reports the network ready and NAME loaded
  run NAME...             RunPodSandbox for every NAME at once; prints "NAME ID SECONDS";
                          with --port HOST:CTR (before the command) each pod's config
                          has that TCP port mapping (a hostPort)
  inspect ID...           PodSandboxStatus, one JSON line each: id, name, state, ip, netns
  list                    ListPodSandbox: "ID STATE NAME" lines
  cycle NAME              RunPodSandbox (timed), PodSandboxStatus, Stop, Remove: one pod's
                          life, for timing; prints "SECONDS IP"
  stop ID... / remove ID...  StopPodSandbox / RemovePodSandbox, all at once
"""

import argparse
import json
import sys
import threading
import time
import uuid

import grpc

SERVICE = "/runtime.v1.RuntimeService/"
CALL_TIMEOUT = 120
NAMESPACE = "cnie2e"
STATES = {0: "READY", 1: "NOTREADY"}

# --- protobuf wire format ---------------------------------------------------------------
VARINT, LEN = 0, 2


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode(fields):
    """A message from (field number, value) pairs: int/bool, str/bytes, or a nested list."""
    out = bytearray()
    for number, value in fields:
        if isinstance(value, (bool, int)):
            out += varint(number << 3 | VARINT) + varint(int(value))
            continue
        if isinstance(value, str):
            value = value.encode()
        elif isinstance(value, list):
            value = encode(value)
        out += varint(number << 3 | LEN) + varint(len(value)) + value
    return bytes(out)


def map_entries(number, mapping):
    """A protobuf map<string, string>: one (key = 1, value = 2) entry message per item."""
    return [(number, [(1, key), (2, value)]) for key, value in mapping.items()]


def read_varint(data, pos):
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def decode(data):
    """A message as {field number: [raw values]}: ints for varints, bytes otherwise."""
    fields, pos = {}, 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = read_varint(data, pos)
        elif wire == LEN:
            size, pos = read_varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        elif wire in (1, 5):  # fixed64, fixed32: none of the fields read here
            size = 8 if wire == 1 else 4
            value, pos = data[pos : pos + size], pos + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.setdefault(number, []).append(value)
    return fields


def first(fields, number, default=None):
    values = fields.get(number)
    return values[0] if values else default


def text(fields, number):
    return first(fields, number, b"").decode()


def message(fields, number):
    return decode(first(fields, number, b""))


def string_map(fields, number):
    entries = (decode(raw) for raw in fields.get(number, []))
    return {text(entry, 1): text(entry, 2) for entry in entries}


# --- RuntimeService calls ---------------------------------------------------------------
class Runtime:
    def __init__(self, socket):
        self.channel = grpc.insecure_channel("unix://" + socket)

    def call(self, method, request):
        rpc = self.channel.unary_unary(SERVICE + method)
        return decode(rpc(encode(request), timeout=CALL_TIMEOUT))

    def status(self):
        """(network ready?, the verbose info map) from Status."""
        response = self.call("Status", [(1, True)])
        conditions = message(response, 1).get(1, [])
        network_ready = False
        for raw in conditions:
            condition = decode(raw)
            if text(condition, 1) == "NetworkReady":
                network_ready = bool(first(condition, 2, 0))
        return network_ready, string_map(response, 2)

    def run_pod_sandbox(self, name, port=None):
        """Like kubelet: metadata (name, uid, namespace, attempt), a hostname and, given
        (host port, container port), a TCP PortMapping (protocol TCP = 0)."""
        metadata = [(1, name), (2, str(uuid.uuid4())), (3, NAMESPACE), (4, 0)]
        config = [(1, metadata), (2, name)]
        if port:
            config.append((5, [(1, 0), (2, port[1]), (3, port[0])]))
        config += map_entries(6, {"cnie2e": "1"})
        response = self.call("RunPodSandbox", [(1, config)])
        return text(response, 1)

    def inspect(self, sandbox_id):
        response = self.call("PodSandboxStatus", [(1, sandbox_id), (2, True)])
        status = message(response, 1)
        network = message(status, 5)
        info = json.loads(string_map(response, 2).get("info", "{}"))
        namespaces = info.get("runtimeSpec", {}).get("linux", {}).get("namespaces", [])
        netns = [ns.get("path", "") for ns in namespaces if ns.get("type") == "network"]
        return {
            "id": text(status, 1),
            "name": text(message(status, 2), 1),
            "state": STATES.get(first(status, 3, 0), "UNKNOWN"),
            "ip": text(network, 1),
            "netns": netns[0] if netns else "",
        }

    def list(self):
        response = self.call("ListPodSandbox", [])
        for raw in response.get(1, []):
            item = decode(raw)
            state = STATES.get(first(item, 3, 0), "UNKNOWN")
            yield text(item, 1), state, text(message(item, 2), 1)

    def stop(self, sandbox_id):
        self.call("StopPodSandbox", [(1, sandbox_id)])

    def remove(self, sandbox_id):
        self.call("RemovePodSandbox", [(1, sandbox_id)])


# --- Commands ---------------------------------------------------------------------------
def wait_network(runtime, name, timeout):
    """containerd reloads its CNI config on a file event; ready means it loaded NAME."""
    deadline = time.monotonic() + timeout
    info = {}
    while time.monotonic() < deadline:
        try:
            ready, info = runtime.status()
        except grpc.RpcError:
            ready = False  # the socket is not up yet
        if ready and f'"{name}"' in info.get("cniconfig", ""):
            return 0
        time.sleep(0.2)
    print(f"network {name} not loaded after {timeout} s; last status info:", file=sys.stderr)
    print(json.dumps(info, indent=1), file=sys.stderr)
    return 1


def at_once(action, items):
    """action(item) for every item at once, one thread each, as kubelet's pod workers do:
    {item: (result, seconds)} and {item: error text}."""
    results, failures = {}, {}

    def one(item):
        start = time.monotonic()
        try:
            results[item] = (action(item), time.monotonic() - start)
        except grpc.RpcError as error:
            failures[item] = f"{error.code().name}: {error.details()}"

    threads = [threading.Thread(target=one, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, failures


def run_all(runtime, names, port):
    results, failures = at_once(lambda name: runtime.run_pod_sandbox(name, port), names)
    for name in names:
        if name in results:
            sandbox_id, seconds = results[name]
            print(f"{name} {sandbox_id} {seconds:.4f}")
    for name, error in failures.items():
        print(f"RunPodSandbox {name} failed: {error}", file=sys.stderr)
    return 1 if failures else 0


def stop_or_remove_all(runtime, command, sandbox_ids):
    _, failures = at_once(getattr(runtime, command), sandbox_ids)
    for sandbox_id, error in failures.items():
        print(f"{command} {sandbox_id} failed: {error}", file=sys.stderr)
    return 1 if failures else 0


def cycle(runtime, name):
    start = time.monotonic()
    sandbox_id = runtime.run_pod_sandbox(name)
    seconds = time.monotonic() - start
    status = runtime.inspect(sandbox_id)
    runtime.stop(sandbox_id)
    runtime.remove(sandbox_id)
    if status["state"] != "READY" or not status["ip"]:
        print(f"pod {name} came up without an address: {status}", file=sys.stderr)
        return 1
    print(f"{seconds:.4f} {status['ip']}")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True)
    parser.add_argument("--timeout", type=float, default=30)
    parser.add_argument("--port", help="HOST:CTR, a TCP port mapping for run")
    parser.add_argument("command", choices=["wait-network", "run", "inspect", "list", "cycle", "stop", "remove"])
    parser.add_argument("args", nargs="*")
    options = parser.parse_args()
    runtime = Runtime(options.socket)
    try:
        if options.command == "wait-network":
            return wait_network(runtime, options.args[0], options.timeout)
        if options.command == "run":
            port = tuple(int(p) for p in options.port.split(":")) if options.port else None
            return run_all(runtime, options.args, port)
        if options.command == "cycle":
            return cycle(runtime, options.args[0])
        if options.command == "inspect":
            for sandbox_id in options.args:
                print(json.dumps(runtime.inspect(sandbox_id)))
        elif options.command == "list":
            for row in runtime.list():
                print(*row)
        else:
            return stop_or_remove_all(runtime, options.command, options.args)
    except grpc.RpcError as error:
        print(f"{options.command} failed: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
