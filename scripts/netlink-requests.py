#!/usr/bin/env python3
"""Netlink requests of one bridge+host-local ADD, by kind: ours (target/release) and the Go
reference (/usr/lib/cni), each the 2nd ADD onto its network (the bridge exists, as on a node).

Counted from outside with strace, which decodes each netlink message it sees sent (plugin and
IPAM child alike); `+dump` marks NLM_F_DUMP requests. The kernel handles an rtnetlink request
inside the sendto that carries it, so that syscall's time (strace -T, a few µs of tracing
included) is how long the request held the RTNL mutex, for the kinds that take it: µs columns,
summed over the ADD. Also counts /proc/sys writes (an open that only reads the value is not one), since some
of them (disable_ipv6, forwarding) take the kernel's RTNL mutex too.

Usage: python3 scripts/netlink-requests.py [dual] [ADDS]
  dual: host-local with an IPv6 range too; ADDS (default 15): timed ADDs per side after the
  first, interleaved; counts are the last ADD's, times the median per kind.
Needs root; everything runs in throwaway network namespaces `nlreq-<pid>-*`, removed at exit.
"""
import collections, json, os, re, statistics, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIDES = {"ours": os.path.join(ROOT, "target/release"), "ref": "/usr/lib/cni"}
DUAL = "dual" in sys.argv[1:]
ADDS = next((int(a) for a in sys.argv[1:] if a.isdigit()), 15)
TAG = f"nlreq-{os.getpid()}"
# strace names the message types only for sockets in its own netns; the plugins' are not.
MSG = re.compile(r"nlmsg_type=(\w+|0x[0-9a-f]+)[^,]*, nlmsg_flags=([\w|]+)")
RTM = {0x10: "RTM_NEWLINK", 0x11: "RTM_DELLINK", 0x12: "RTM_GETLINK", 0x13: "RTM_SETLINK",
       0x14: "RTM_NEWADDR", 0x15: "RTM_DELADDR", 0x16: "RTM_GETADDR", 0x18: "RTM_NEWROUTE",
       0x19: "RTM_DELROUTE", 0x1a: "RTM_GETROUTE", 0x1c: "RTM_NEWNEIGH", 0x1e: "RTM_GETNEIGH",
       0x50: "RTM_GETNETCONF", 0x70: "RTM_NEWVLAN", 0x71: "RTM_DELVLAN", 0x72: "RTM_GETVLAN"}
SYSCTL_OPEN = re.compile(r'^(\d+) +openat\(AT_FDCWD, "/proc/sys/([^"]+)", O_(?:WRONLY|RDWR).*= (\d+)$')
DURATION = re.compile(r"<(\d+\.\d+)>$")
WRITE = re.compile(r"^(\d+) +p?write(?:64)?\((\d+),")


def kind(nlmsg_type, flags):
    name = nlmsg_type if not nlmsg_type.startswith("0x") else RTM.get(int(nlmsg_type, 16), nlmsg_type)
    dump = "NLM_F_DUMP" in flags or any(int(f, 16) & 0x300 == 0x300 for f in re.findall(r"0x[0-9a-f]+", flags))
    return name + ("+dump" if dump and "_GET" in name else "")


def netns(name):
    subprocess.run(["ip", "netns", "add", name], check=True)
    return name


def add(side, host, ctr, data):
    ranges = [[{"subnet": "10.40.0.0/16"}]]
    if DUAL:
        ranges.append([{"subnet": "fd40::/64"}])
    config = {"cniVersion": "1.0.0", "name": f"nlreq-{side}", "type": "bridge",
              "bridge": f"nlq-{side}", "isDefaultGateway": True,
              "ipam": {"type": "host-local", "ranges": ranges, "dataDir": data}}
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": ctr, "CNI_NETNS": f"/run/netns/{ctr}",
           "CNI_IFNAME": "eth0", "CNI_PATH": SIDES[side], "PATH": "/usr/bin:/bin"}
    with tempfile.NamedTemporaryFile("r", suffix=".strace") as trace:
        cmd = ["ip", "netns", "exec", host, "strace", "-f", "-T", "-qq", "-o", trace.name, "-s", "64",
               "-e", "trace=sendto,sendmsg,openat,write,pwrite64", os.path.join(SIDES[side], "bridge")]
        out = subprocess.run(cmd, env=env, input=json.dumps(config).encode(), capture_output=True)
        if out.returncode != 0:
            sys.exit(f"{side} ADD failed: {out.stdout.decode()}{out.stderr.decode()}")
        counts, micros = collections.Counter(), collections.Counter()
        sysctl_fds, unfinished = {}, {}
        for line in trace:
            line = line.rstrip("\n")
            pid = line.split(" ", 1)[0]
            if "sendto(" in line or "sendmsg(" in line:
                kinds = [kind(t, f) for t, f in MSG.findall(line)]
                counts.update(kinds)
                unfinished[pid] = kinds
            if ("sendto resumed" in line or "sendto(" in line) and (took := DURATION.search(line)):
                for k in unfinished.pop(pid, []):
                    micros[k] += round(float(took.group(1)) * 1e6)
            elif opened := SYSCTL_OPEN.match(line):
                pid, key, fd = opened.groups()
                sysctl_fds[(pid, fd)] = re.sub(r"conf/[^/]+/", "conf/*/", key)
            elif (written := WRITE.match(line)) and written.groups() in sysctl_fds:
                counts["write /proc/sys/" + sysctl_fds.pop(written.groups())] += 1
        return counts, micros


def main():
    made = []
    try:
        hosts = {side: netns(f"{TAG}-{side}") for side in SIDES}
        made.extend(hosts.values())
        runs = {side: [] for side in SIDES}
        with tempfile.TemporaryDirectory() as data:
            for i in range(ADDS + 1):
                for side in SIDES:
                    ctr = netns(f"{TAG}-{side}-c{i}")
                    made.append(ctr)
                    runs[side].append(add(side, hosts[side], ctr, data))
        table = {}
        for side, adds in runs.items():
            timed = adds[1:]
            kinds = set().union(*(c for c, _ in timed))
            table[side] = (timed[-1][0], collections.Counter(
                {k: round(statistics.median(m[k] for _, m in timed)) for k in kinds}))
        kinds = sorted(set(table["ours"][0]) | set(table["ref"][0]))
        print(f"{'request':44s} {'ours':>5s} {'ref':>5s} {'ours µs':>8s} {'ref µs':>8s}")
        for k in kinds:
            (oc, om), (rc, rm) = ((table[s][0][k], table[s][1][k]) for s in SIDES)
            times = f"{om:8d} {rm:8d}" if not k.startswith("write") else ""
            print(f"{k:44s} {oc:5d} {rc:5d} {times}")
        total = {s: [sum(n for k, n in c.items() if not k.startswith("write")) for c in table[s]]
                 for s in SIDES}
        print(f"{'netlink requests':44s} {total['ours'][0]:5d} {total['ref'][0]:5d} "
              f"{total['ours'][1]:8d} {total['ref'][1]:8d}")
    finally:
        for name in reversed(made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


main()
