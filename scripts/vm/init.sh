#!/bin/sh
# PID 1 of the VM lane's qemu guest (copied to /init of the initramfs by
# scripts/vm-lane.sh). It runs under busybox sh, not bash.
#
# It reads the plan that vm-lane.sh wrote into /vm-lane/:
#   modules   kernel modules to load, one a line
#   tests     one test executable a line: NAME<TAB>WORKDIR<TAB>PATH
#   filters   libtest filters, one a line (e.g. "vm_")
#   env       KEY=VALUE lines exported to the tests (CNI_BIN_DIR, ...)
# and prints "@@VM-LANE ..." marker lines on the serial console, which the host
# parses to decide the lane's exit code. It must always reach `poweroff -f`: if
# PID 1 exited instead, the kernel would panic (panic=-1 + qemu -no-reboot end
# the VM, but the host would then report "guest did not finish").

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TMPDIR=/tmp

# Busybox sh prefers its own applets over $PATH, and its `ip` applet lacks
# ipvlan/vlan/bridge support: call iproute2 by its full path.
IP=/usr/bin/ip

marker() { echo "@@VM-LANE $*"; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }

finish() {
    marker "DONE uptime=$(uptime_s)"
    sync
    poweroff -f
    # Not reached; keep PID 1 alive if poweroff ever fails.
    while :; do sleep 60; done
}

# The kernel gives PID 1 only an empty rootfs: mount the API filesystems.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
# No tmpfs over /tmp: the rootfs is already in RAM, and test executables
# shipped from the host's /tmp live there.
chmod 1777 /tmp
# The plugins keep state under /var/run (a symlink to /run in the image) and
# `ip netns` needs /run/netns.
mount -t tmpfs tmpfs /run
mkdir -p /run/netns /run/lock
# Tests that create network namespaces bind-mount over /run/netns/<name>.
mount --make-rshared / 2>/dev/null

marker "BOOTED kernel=$(uname -r) uptime=$(uptime_s)"

# Probe boot (vm-lane.sh checking whether KVM works): stop here.
if grep -q 'vmlane.probe' /proc/cmdline; then
    marker "PROBE-OK"
    finish
fi

# Load the modules up front rather than relying on the kernel's on-demand
# loading (request_module), so a missing module shows up as one clear line.
loaded=0
# shellcheck disable=SC2013 # one module name a line, no spaces
for m in $(cat /vm-lane/modules 2>/dev/null); do
    if modprobe "$m"; then
        loaded=$((loaded + 1))
    else
        marker "MODULE-FAILED $m"
    fi
done
marker "MODULES loaded=$loaded"

$IP link set lo up

# Self-check of the kernel features the lane exists for (ipvlan, 802.1Q vlan,
# dummy, bridge VLAN filtering), so a broken lane fails even when no test ran.
# ipvlan cannot use a veth as its master: a dummy link is the master here.
selfcheck() {
    $IP link add vmlane0 type dummy &&
        $IP link add vmlane0.10 link vmlane0 type vlan id 10 &&
        $IP link add vmlane1 link vmlane0 type ipvlan mode l2 &&
        $IP link add vmlane2 type bridge vlan_filtering 1 &&
        $IP link add vmlane3 type dummy &&
        $IP link set vmlane3 master vmlane2 &&
        bridge vlan add dev vmlane3 vid 20
}
if out=$(selfcheck 2>&1); then
    marker "SELFCHECK ok"
else
    marker "SELFCHECK failed: $(echo "$out" | tr '\n' ' ')"
fi
for l in vmlane1 vmlane0.10 vmlane3 vmlane2 vmlane0; do $IP link del "$l" 2>/dev/null; done

# Environment for the tests.
while IFS= read -r kv; do
    # shellcheck disable=SC2163 # exports the KEY=VALUE the line holds
    [ -n "$kv" ] && export "$kv"
done < /vm-lane/env

set --
while IFS= read -r f; do
    [ -n "$f" ] && set -- "$@" "$f"
done < /vm-lane/filters

tab=$(printf '\t')
while IFS="$tab" read -r name workdir exe; do
    [ -n "$name" ] || continue
    marker "BEGIN name=$name"
    start=$(uptime_s)
    rm -f /tmp/vm-lane.rc /tmp/vm-lane.out
    # The subshell records the real exit status: busybox sh reports the
    # pipeline's last command (tee) otherwise. `--ignored` selects the tests
    # marked #[ignore = "... runs in the VM lane"]; one thread keeps their
    # link names and netns from colliding.
    (
        cd "$workdir" 2>/dev/null || cd /
        "$exe" --ignored --test-threads=1 "$@" </dev/null
        echo $? >/tmp/vm-lane.rc
    ) 2>&1 | tee /tmp/vm-lane.out
    rc=$(cat /tmp/vm-lane.rc 2>/dev/null || echo 255)
    summary=$(grep '^test result:' /tmp/vm-lane.out | tail -n 1)
    marker "RESULT name=$name status=$rc start=$start end=$(uptime_s) :: ${summary:-no libtest summary}"
done < /vm-lane/tests

finish
