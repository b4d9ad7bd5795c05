#!/usr/bin/env python3
"""Writes the committed seed corpus (fuzz/seeds/<target>/) from hand-made examples and the
repository's example configs. Run from anywhere; it replaces what is there."""

import struct
import json
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SEEDS = os.path.join(HERE, "seeds")

PLUGINS = ["bridge", "macvlan", "ipvlan", "host-local", "loopback"]
COMMANDS = ["ADD", "DEL", "CHECK", "STATUS", "GC"]
VERSIONS = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]

IPAM = {
    "type": "host-local",
    "ranges": [[{"subnet": "10.22.0.0/24", "rangeStart": "10.22.0.10",
                 "rangeEnd": "10.22.0.250", "gateway": "10.22.0.1"}],
               [{"subnet": "fd00:22::/64"}]],
    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "fd00:22::1"}],
    "dataDir": "/var/lib/cni/networks",
    "resolvConf": "/etc/resolv.conf",
}

RESULT_1 = {
    "cniVersion": "1.1.0",
    "interfaces": [{"name": "eth0", "mac": "0a:58:0a:16:00:0a", "mtu": 1500,
                    "sandbox": "/var/run/netns/x", "socketPath": "/s", "pciID": "0000:00:01.0"}],
    "ips": [{"interface": 0, "address": "10.22.0.10/24", "gateway": "10.22.0.1"},
            {"address": "fd00:22::a/64"}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.22.0.1", "mtu": 1400, "advmss": 1360,
                "priority": 10, "table": 100, "scope": 0}],
    "dns": {"nameservers": ["10.22.0.1"], "domain": "example", "search": ["a"],
            "options": ["ndots:5"]},
}
RESULT_04 = {
    "cniVersion": "0.4.0",
    "interfaces": [{"name": "eth0", "mac": "0a:58:0a:16:00:0a", "sandbox": "/n"}],
    "ips": [{"version": "4", "interface": 0, "address": "10.22.0.10/24",
             "gateway": "10.22.0.1"}],
    "routes": [{"dst": "0.0.0.0/0"}],
    "dns": {},
}
RESULT_02 = {
    "cniVersion": "0.2.0",
    "ip4": {"ip": "10.22.0.10/24", "gateway": "10.22.0.1",
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.22.0.1"}]},
    "ip6": {"ip": "fd00:22::a/64"},
    "dns": {"nameservers": ["10.22.0.1"]},
}


def write(target, name, data):
    os.makedirs(os.path.join(SEEDS, target), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(SEEDS, target, name), "wb") as f:
        f.write(data)


def plugin_configs():
    base = {"cniVersion": "1.0.0", "name": "fuzznet"}
    yield "bridge", {**base, "type": "bridge", "bridge": "cni0", "isGateway": True,
                     "ipMasq": True, "mtu": 1400, "vlan": 10, "hairpinMode": True,
                     "vlanTrunk": [{"minID": 100, "maxID": 110}, {"id": 200}],
                     "ipam": IPAM, "runtimeConfig": {"mac": "0a:58:00:00:00:01"},
                     "args": {"cni": {"mac": "0a:58:00:00:00:02"}}}
    yield "macvlan", {**base, "type": "macvlan", "master": "eth0", "mode": "bridge",
                      "mtu": 1400, "ipam": IPAM}
    yield "ipvlan", {**base, "type": "ipvlan", "mode": "l3s", "prevResult": RESULT_1}
    yield "host-local", {**base, "type": "host-local", "ipam": IPAM,
                         "args": {"cni": {"ips": ["10.22.0.20"]}},
                         "runtimeConfig": {"ips": ["fd00:22::20/64"],
                                           "ipRanges": [[{"subnet": "10.9.0.0/16"}]]}}
    yield "loopback", {**base, "type": "loopback", "prevResult": RESULT_04}


def main():
    shutil.rmtree(SEEDS, ignore_errors=True)

    for plugin, config in plugin_configs():
        p = PLUGINS.index(plugin)
        for c, command in enumerate(COMMANDS):
            selector = p + 5 * c
            write("plugin_config", f"{plugin}-{command.lower()}",
                  bytes([selector]) + json.dumps(config).encode())
        # The CNI_ARGS line (bit 7), for ADD.
        write("plugin_config", f"{plugin}-add-cni-args",
              bytes([0x80 | p]) + b"IgnoreUnknown=1;IP=10.22.0.30;MAC=0a:58:00:00:00:03\n"
              + json.dumps(config).encode())
    examples = os.path.join(ROOT, "examples")
    paths = sorted(os.path.relpath(os.path.join(d, f), examples)
                   for d, _, files in os.walk(examples) for f in files)
    for path in paths:
        with open(os.path.join(examples, path), "rb") as f:
            text = f.read()
        name = path.replace(os.sep, "-")
        if name.endswith(".conf"):
            plugin = json.loads(text)["type"]
            write("plugin_config", f"example-{name}", bytes([PLUGINS.index(plugin)]) + text)
        write("cnitool_files", f"list-{name}", b"\x00" + text)

    env = [
        ["ADD", "ctr-1", "/var/run/netns/x", "eth0", "IgnoreUnknown=1;IP=10.1.2.3", "/opt/cni/bin:/usr/lib/cni", '{"cniVersion":"1.0.0","name":"n"}'],
        ["DEL", "ctr-1", "", "eth0", "K8S_POD_NAME=a=b", "/opt/cni/bin"],
        ["CHECK", "c", "/proc/1/ns/net", "net1", "bad;pair", "/bin"],
        ["GC", "", "", "", "", "/bin", '{"cniVersion":"1.1.0","name":"n","cni.dev/valid-attachments":[{"containerID":"c","ifname":"eth0"}]}'],
        ["STATUS", "", "", "", "", "/bin", '{"cniVersion":"1.1.0","name":"n"}'],
        ["VERSION"],
        ["ADD", "ctr/../x", "/n", "eth0/../", "", ""],
    ]
    for i, fields in enumerate(env):
        write("cni_env", f"env-{i}", b"\x00".join(f.encode() for f in fields))

    results = {"1.1.0": RESULT_1, "0.4.0": RESULT_04, "0.2.0": RESULT_02}
    for version, result in results.items():
        for target_index, target in enumerate(VERSIONS):
            if target in (version, "0.1.0", "1.0.0", "0.3.1"):
                write("result_versions", f"{version}-as-{target}",
                      bytes([target_index]) + json.dumps(result).encode())
        write("cnitool_files", f"cache-{version}", bytes([2 + 4 * 5]) + json.dumps({
            "kind": "cniCacheV1", "containerId": "fuzz-ctr",
            "config": "eyJjbmlWZXJzaW9uIjoiMS4wLjAiLCJuYW1lIjoiZGVtbyJ9",
            "ifName": "eth0", "networkName": "fuzznet", "netns": "/n",
            "cniArgs": [["IP", "10.1.2.3"]], "capabilityArgs": {"mac": "x"},
            "result": result}).encode())
        write("cnitool_files", f"legacy-cache-{version}", bytes([2 + 4 * 1])
              + json.dumps(result).encode())
    write("cnitool_files", "plugin-conf", b"\x01" + json.dumps(
        {"cniVersion": "0.4.0", "name": "n", "type": "bridge",
         "capabilities": {"portMappings": True}}).encode())
    write("cnitool_files", "cni-args", b"\x03IP=10.1.2.3;MAC=0a:58:00:00:00:01")
    write("cnitool_files", "cap-args", b"\x03{\"portMappings\":[{\"hostPort\":80}]}")

    write("ipam_store", "index-and-stamp", b"\x00".join([
        b"fuzz-ctr\r\neth0", b"other\r\neth1", b"fuzz-ctr",
        b"# host-local attachment index v1\n10.1.2.2\nfd00::2\n",
        b"# host-local index stamp v1\n00000000001700000000 000000000 00000000000000000003 00000000deadbeef\n",
        b"10.1.2.3", b"nameserver 10.0.0.1\nsearch a b\noptions ndots:5\ndomain x\n"]))
    write("ipam_store", "legacy-and-full", b"\x00".join([
        b"legacy-id", b"  fuzz-ctr\r\neth0  ", b"x\r\ny\r\nz", b"garbage", b"", b"fd00::5"]))

    link = bytes.fromhex(
        "00000100" "2a000000" "01110000" "00000000"  # ifinfomsg: index 42, UP|PROMISC
        "0800" "0300" "6d763000"                    # IFLA_IFNAME mv0
        "0a00" "0100" "020000000009" "0000"          # IFLA_ADDRESS
        "0800" "0400" "78050000"                    # IFLA_MTU 1400
        "0800" "0a00" "07000000"                    # IFLA_MASTER 7
        "0500" "1000" "06000000"                    # IFLA_OPERSTATE up
        "2000" "1200"                               # IFLA_LINKINFO
        "0c00" "0100" "6d6163766c616e00"            #   kind "macvlan"
        "1000" "0200" "0800" "0100" "02000000" "00000000")
    write("netlink_replies", "link-macvlan", b"\x00" + link)
    addr = bytes.fromhex("02180080" "03000000" "0800" "0200" "0a010203" "0800" "0800" "40000000")
    write("netlink_replies", "address-v4", b"\x01" + addr)
    route = bytes.fromhex(
        "0a000000" "fe030000"                       # rtmsg: AF_INET6, /0, main, boot
        "1400" "0100" "00000000000000000000000000000000"
        "0800" "0f00" "e8030000"                    # RTA_TABLE 1000
        "0c00" "0800" "0800" "0200" "78050000"      # RTA_METRICS mtu 1400
        "2400" "0900"                               # RTA_MULTIPATH
        "1c00" "0000" "07000000"                    #   rtnexthop oif 7
        "1400" "0500" "fe800000000000000000000000000001")
    write("netlink_replies", "route-multipath", b"\x02" + route)
    bridge = bytes.fromhex("1000" "0c00" "0500" "0400" "01000000" "0500" "2100" "00000000"
                           "0c00" "1a00" "0800" "0200" "06006400")
    write("netlink_replies", "bridge-port", b"\x03" + bridge)
    ack = bytes.fromhex("00" "1000000000000000" "0000000000000000"
                        "1400" "0100") + b"Device busy\0" + b"\0"
    write("netlink_replies", "ext-ack", b"\x04\x03" + ack[1:])

    def nla(kind, value):  # one netlink attribute, padded to 4 bytes
        head = struct.pack("<HH", 4 + len(value), kind)
        return head + value + b"\0" * (-len(value) % 4)
    nested = 0x8000
    tuple_orig = nla(1 | nested,                      # CTA_TUPLE_ORIG
                     nla(1 | nested, nla(1, bytes([10, 0, 0, 2])) + nla(2, bytes([10, 0, 0, 1])))
                     + nla(2 | nested, nla(1, b"\x11") + nla(2, struct.pack(">H", 40000))
                           + nla(3, struct.pack(">H", 53))))
    conntrack = b"\x02\x00\x00\x00" + tuple_orig + nla(18, struct.pack(">H", 0)) \
        + nla(12, struct.pack(">I", 7))             # CTA_ZONE, CTA_ID
    write("netlink_replies", "conntrack-udp", b"\x05" + conntrack)
    rule = (b"\x01\x00\x00\x00" + nla(1, b"cni_plugins_masquerade\0") + nla(2, b"masq_checks\0")
            + nla(3, struct.pack(">Q", 9)) + nla(4 | nested, b"")
            + nla(7, b"\x00\x0cfuzz-netw-1\0"))  # NFTA_RULE_USERDATA: comment TLV
    write("netlink_replies", "nft-rule", b"\x06" + rule)


if __name__ == "__main__":
    main()
