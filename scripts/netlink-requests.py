#!/usr/bin/env python3
"""Netlink requests of one bridge+host-local ADD, by kind: ours (target/release) and the Go
reference (/usr/lib/cni), each the 2nd ADD onto its network (the bridge exists, as on a node).

Counted from outside with strace, which decodes each netlink message it sees sent (plugin and
IPAM child alike); `+dump` marks NLM_F_DUMP requests. The kernel handles an rtnetlink request
inside the sendto that carries it, so that syscall's time (strace -T, a few µs of tracing
included) is the request's run, plus any wait for the RTNL mutex: µs columns, summed over the
ADD. Also counts /proc/sys writes (an open that only reads the value is not one), since some
of them (disable_ipv6, forwarding) take the RTNL mutex too.

Usage: python3 scripts/netlink-requests.py [dual] [ADDS] [burst]
  dual: host-local with an IPv6 range too; ADDS (default 15): timed ADDs per side after the
  first, interleaved; counts are the last ADD's, times the median per kind.
  burst: instead, ADDS simultaneous ADDs per side (after one alone), traced with
  --seccomp-bpf so only netlink sends stop: per ADD, the time in its netlink requests (their
  run plus the wait for RTNL under the burst), against the batch's wall time.
Needs root; everything runs in throwaway network namespaces `nlreq-<pid>-*`, removed at exit.
"""
import collections, json, os, re, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIDES = {"ours": os.path.join(ROOT, "target/release"), "ref": "/usr/lib/cni"}
DUAL = "dual" in sys.argv[1:]
BURST = "burst" in sys.argv[1:]
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


def start_add(side, host, ctr, data, syscalls):
    ranges = [[{"subnet": "10.40.0.0/16"}]]
    if DUAL:
        ranges.append([{"subnet": "fd40::/64"}])
    config = {"cniVersion": "1.0.0", "name": f"nlreq-{side}", "type": "bridge",
              "bridge": f"nlq-{side}", "isDefaultGateway": True,
              "ipam": {"type": "host-local", "ranges": ranges, "dataDir": data}}
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": ctr, "CNI_NETNS": f"/run/netns/{ctr}",
           "CNI_IFNAME": "eth0", "CNI_PATH": SIDES[side], "PATH": "/usr/bin:/bin"}
    trace = tempfile.NamedTemporaryFile("r", suffix=".strace")
    cmd = ["ip", "netns", "exec", host, "strace", "-f", "--seccomp-bpf", "-T", "-qq", "-o",
           trace.name, "-s", "64", "-e", f"trace={syscalls}", os.path.join(SIDES[side], "bridge")]
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    proc.stdin.write(json.dumps(config).encode())
    proc.stdin.close()
    return proc, trace


def finish_add(side, proc, trace):
    output = proc.stdout.read()
    if proc.wait() != 0:
        sys.exit(f"{side} ADD failed: {output.decode()}")
    with trace:
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


def add(side, host, ctr, data):
    return finish_add(side, *start_add(side, host, ctr, data,
                                       "sendto,sendmsg,openat,write,pwrite64"))


def burst(hosts, data, made):
    """ADDS simultaneous ADDs per side; prints per-ADD netlink time and the batch wall."""
    print(f"{ADDS} simultaneous ADDs per side: time in netlink requests per ADD (ms)")
    print(f"{'side':5s} {'wall':>7s} {'median':>7s} {'p90':>7s} {'changes':>8s} {'sum/wall':>9s}")
    for side in SIDES:
        first = netns(f"{TAG}-{side}-first")
        made.append(first)
        add(side, hosts[side], first, data)
        ctrs = [netns(f"{TAG}-{side}-b{i}") for i in range(ADDS)]
        made.extend(ctrs)
        start = time.perf_counter()
        running = [start_add(side, hosts[side], c, data, "sendto,sendmsg") for c in ctrs]
        results = [finish_add(side, *r) for r in running]
        wall = (time.perf_counter() - start) * 1e3
        totals = sorted(sum(m.values()) / 1e3 for _, m in results)
        changes = statistics.median(
            sum(n for k, n in m.items() if k.split("_")[1][:3] in ("NEW", "SET", "DEL")) / 1e3
            for _, m in results)
        print(f"{side:5s} {wall:7.0f} {statistics.median(totals):7.1f} "
              f"{totals[int(len(totals) * 0.9)]:7.1f} {changes:8.1f} {sum(totals) / wall:9.2f}")
        kinds = sorted(set().union(*(m for _, m in results)))
        print("      median per kind: " + ", ".join(
            f"{k} {statistics.median(m[k] for _, m in results) / 1e3:.1f}" for k in kinds))


def main():
    made = []
    try:
        hosts = {side: netns(f"{TAG}-{side}") for side in SIDES}
        made.extend(hosts.values())
        if BURST:
            with tempfile.TemporaryDirectory() as data:
                burst(hosts, data, made)
            return
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
