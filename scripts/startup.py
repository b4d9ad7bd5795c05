#!/usr/bin/env python3
"""Exec-to-exit time of a VERSION call and binary size: ours (target/release) against the Go
reference (/usr/lib/cni), interleaved A B A B so machine drift cancels out. Medians.

Usage: cargo build --release --workspace && python3 scripts/startup.py [runs, default 200]
"""
import subprocess, time, statistics, sys, os
env={"CNI_COMMAND":"VERSION","PATH":"/usr/bin:/bin"}
ROOT=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pairs=[(p, os.path.join(ROOT, "target/release", p), f"/usr/lib/cni/{p}") for p in ["bridge","host-local","loopback","macvlan","ipvlan","tuning"]]
N=int(sys.argv[1]) if len(sys.argv)>1 else 200
for name, ours, ref in pairs:
    t={"ours":[], "ref":[]}
    for i in range(N):
        for k,b in (("ours",ours),("ref",ref)):
            s=time.perf_counter(); subprocess.run([b], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL); t[k].append((time.perf_counter()-s)*1000)
    mo, mr = statistics.median(t["ours"]), statistics.median(t["ref"])
    print(f"{name:11s} ours {mo:.2f} ms  reference {mr:.2f} ms  ratio {mo/mr:.2f}  size ours {os.path.getsize(ours)/1e6:.2f} MB ref {os.path.getsize(ref)/1e6:.2f} MB ratio {os.path.getsize(ours)/os.path.getsize(ref):.2f}")
