#!/usr/bin/env python3
"""Cold-cache start-up of builds of the loopback plugin, compared with the first one given.

Before every timed call the page cache is dropped (sync; echo 3 > /proc/sys/vm/drop_caches),
so each call reads its binary (and what else it maps) from disk again, as the first call on
a node after boot does. Per round and variant: a VERSION call, then a loopback ADD into a
container netns (a DEL, untimed, follows). Variants are interleaved call by call, in a
rotating order, so drift hits all of them; the ratios are medians of the per-round ratios
to the first variant, with 95 % bootstrap intervals. Time = fork to reap; "KiB read" is the
call's block input (wait4's ru_inblock).

Dropping the cache slows everything else on the machine for a moment: keep runs short.
The calls run in a throwaway host netns; both namespaces (cnitest-<pid>-cold-*) are
removed at the end, failure included.

Usage (root): python3 scripts/cold-start.py RUNS NAME=DIR [NAME=DIR ...]
  e.g. python3 scripts/cold-start.py 60 layout=target/release plain=/tmp/plain-build
"""
import ctypes
import os
import random
import statistics
import subprocess
import sys
import time

CLONE_NEWNET = 0x40000000
CONFIG = b'{"cniVersion":"1.0.0","name":"cold-start","type":"loopback"}'


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")


def call(binary, env, stdin):
    """Runs binary to completion; returns (ms, KiB read). Fails on a non-zero exit."""
    stdin_r, stdin_w = os.pipe()
    out_r, out_w = os.pipe()
    os.write(stdin_w, stdin)
    os.close(stdin_w)
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.dup2(stdin_r, 0)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        os.execve(binary, [binary], env)
    _, status, usage = os.wait4(pid, 0)
    elapsed = (time.perf_counter() - start) * 1e3
    os.close(stdin_r)
    os.close(out_w)
    output = os.read(out_r, 65536)
    os.close(out_r)
    if status != 0:
        sys.exit(f"{binary} failed: {output.decode(errors='replace')}")
    return elapsed, usage.ru_inblock // 2


def measure(runs, variants, container):
    env = {"CNI_CONTAINERID": "cold-start", "CNI_NETNS": f"/run/netns/{container}",
           "CNI_IFNAME": "lo", "CNI_PATH": "/nonexistent"}
    results = {name: {"VERSION": [], "ADD": [], "read": []} for name, _ in variants}
    for i in range(runs):
        shift = i % len(variants)
        for name, directory in variants[shift:] + variants[:shift]:
            binary = os.path.join(directory, "loopback")
            drop_caches()
            ms, _ = call(binary, {"CNI_COMMAND": "VERSION"}, b"")
            results[name]["VERSION"].append(ms)
            drop_caches()
            ms, read = call(binary, dict(env, CNI_COMMAND="ADD"), CONFIG)
            results[name]["ADD"].append(ms)
            results[name]["read"].append(read)
            call(binary, dict(env, CNI_COMMAND="DEL"), CONFIG)
    return results


def paired(ours, base):
    """Median of the per-round ratios and its 95 % bootstrap interval."""
    ratios = [a / b for a, b in zip(ours, base)]
    boot = sorted(statistics.median(random.choices(ratios, k=len(ratios))) for _ in range(2000))
    return statistics.median(ratios), boot[50], boot[1949]


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    runs = int(sys.argv[1])
    variants = [arg.split("=", 1) for arg in sys.argv[2:]]
    host, container = (f"cnitest-{os.getpid()}-cold-{role}" for role in ("host", "ctr"))
    try:
        for name in (host, container):
            subprocess.run(["ip", "netns", "add", name], check=True)
        fd = os.open(f"/run/netns/{host}", os.O_RDONLY)
        if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
            sys.exit(f"setns {host}: {os.strerror(ctypes.get_errno())}")
        results = measure(runs, variants, container)
    finally:
        for name in (host, container):
            subprocess.run(["ip", "netns", "delete", name], stderr=subprocess.DEVNULL)
    base_name = variants[0][0]
    base = results[base_name]
    for name, _ in variants:
        r = results[name]
        line = (f"{name:16s} VERSION {statistics.median(r['VERSION']):6.2f} ms  "
                f"ADD {statistics.median(r['ADD']):6.2f} ms  "
                f"{statistics.median(r['read']):5.0f} KiB read per ADD")
        if name != base_name:
            for verb in ("VERSION", "ADD"):
                ratio, low, high = paired(r[verb], base[verb])
                line += f"  {verb} / {base_name} {ratio:.2f} ({low:.2f}-{high:.2f})"
        print(line)
    print(f"{runs} cold calls per variant and verb")


if __name__ == "__main__":
    main()
