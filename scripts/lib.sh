# Shared by the scripts in this directory (sourced, not run).

# The repository, whatever directory the sourcing script runs from.
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# `section TEXT` prints a step's heading and `fail TEXT` exits with an error, both tagged
# with SCRIPT_TAG (the script's name) when the script sets it.
section() { printf '\n=== %s%s\n' "${SCRIPT_TAG:+$SCRIPT_TAG: }" "$*"; }
fail() {
    echo "${SCRIPT_TAG:+$SCRIPT_TAG: }FAIL: $*" >&2
    exit 1
}

# Exits unless running as root; $1 names the script, $2 says why root is needed.
require_root() {
    if [[ $(id -u) -ne 0 ]]; then
        echo "$1: must run as root ($2)" >&2
        exit 1
    fi
}

# Installs the given Debian packages that are not installed yet (apt-get update only then),
# so a fresh machine gets what it needs and a prepared one is not slowed down.
install_missing_packages() {
    local package missing=()
    for package in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$package")
        fi
    done
    if ((${#missing[@]})); then
        printf '\n=== Installing %s\n' "${missing[*]}"
        # Wait for another apt or dpkg run (a concurrent script, unattended upgrades) to
        # finish instead of failing on its lock.
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"
    fi
}

# --- For the end-to-end tests that run plugins in the machine's own namespace -----------
# (podman-e2e.sh, containerd-e2e.sh): step timings, the name and subnet pre-check, and the
# root namespace's state before and after.

# Starts the clock; `step NAME` then records the time since the previous step and
# `print_timings` lists them with the total.
start_timer() {
    T0=$(date +%s.%N)
    TIMINGS=()
    step_start=$T0
}
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%6.2f s", a - b }'; }
step() {
    local now
    now=$(date +%s.%N)
    TIMINGS+=("$(printf '%-44s %s' "$1" "$(elapsed "$now" "$step_start")")")
    step_start=$now
}
print_timings() {
    ((${#TIMINGS[@]})) || return 0
    printf '\n=== timings\n'
    printf '%s\n' "${TIMINGS[@]}"
    printf '%-44s %s\n' "total" "$(elapsed "$(date +%s.%N)" "$T0")"
}

# Exits (through the caller's `fail`) unless every link named is absent and no address of
# the machine is in one of the /24 subnets given by their first three octets:
# require_unused LINK... -- A.B.C...
require_unused() {
    local link subnets
    while (($#)) && [[ $1 != -- ]]; do
        link=$1
        shift
        if ip link show "$link" >/dev/null 2>&1; then
            fail "link $link already exists (another run, or a leftover): refusing to touch it"
        fi
    done
    shift
    subnets=$(printf '%s|' "$@")
    if ip -o addr | grep -qE " (${subnets%|})\."; then
        fail "one of the subnets $* (/24) is in use on this machine"
    fi
}

# e2e_networks PREFIX BR_SUBNET MV_SUBNET: the names of the test's bridge and macvlan
# networks and of the links they make, all from PREFIX, and their /24 subnets (first three
# octets); exits if any of them is in use already.
# shellcheck disable=SC2034 # the names are for the sourcing script
e2e_networks() {
    BR_NET=$1-br MV_NET=$1-mv BRIDGE=${1}0 MASTER=$1-m0 MASTER_PEER=$1-m1
    BR_SUBNET=$2 MV_SUBNET=$3
    require_unused "$BRIDGE" "$MASTER" "$MASTER_PEER" -- "$BR_SUBNET" "$MV_SUBNET"
}

# e2e_baseline PREFIX: the test's work directory WORK (/tmp/PREFIX-*) and, in WORK/baseline
# (BASE), the root namespace's state and the script's `netns_list` before the test;
# IP_FORWARD and CNI_CACHE for the clean-up.
# shellcheck disable=SC2034 # the names are for the sourcing script
e2e_baseline() {
    WORK=$(mktemp -d "/tmp/$1-XXXXXX")
    BASE=$WORK/baseline
    mkdir -p "$BASE"
    save_root_state "$BASE"
    netns_list >"$BASE/netns"
    IP_FORWARD=$(cat /proc/sys/net/ipv4/ip_forward)
    CNI_CACHE=/var/lib/cni/results
}

# The macvlan network's master: a veth pair of the test's own, both ends up.
add_master_veth() {
    ip link add "$MASTER" type veth peer name "$MASTER_PEER"
    ip link set "$MASTER" up
    ip link set "$MASTER_PEER" up
}

# Clean-up: the bridge and the master pair go, and net.ipv4.ip_forward gets back the
# value saved in IP_FORWARD (the bridge's isGateway turns it on, as the Go bridge does).
remove_links_restore_forwarding() {
    ip link delete "$BRIDGE" 2>/dev/null
    ip link delete "$MASTER" 2>/dev/null
    if [[ $(cat /proc/sys/net/ipv4/ip_forward) != "$IP_FORWARD" ]]; then
        echo "$IP_FORWARD" >/proc/sys/net/ipv4/ip_forward
    fi
}

# remove_stale_cache PREFIX: lists and deletes the libcni cache files of the test's
# networks (PREFIX-*) left in CNI_CACHE; fails when there were any.
remove_stale_cache() {
    local stale
    stale=$(find "$CNI_CACHE" -maxdepth 1 -name "$1-*" 2>/dev/null)
    [[ -z $stale ]] && return 0
    echo "LEAK: cache files left behind:"
    echo "$stale"
    find "$CNI_CACHE" -maxdepth 1 -name "$1-*" -delete
    return 1
}

# PLUGIN_SRC: the plugins under test, $CNI_BIN_DIR or target/debug; the workspace's
# binaries are built when one of the plugins named is missing there.
plugins_under_test() {
    local plugin
    PLUGIN_SRC=${CNI_BIN_DIR:-$REPO_ROOT/target/debug}
    [[ -z ${CNI_BIN_DIR:-} ]] || return 0
    for plugin in "$@"; do
        if [[ ! -x $PLUGIN_SRC/$plugin ]]; then
            printf '\n=== cargo build --workspace --bins\n'
            cargo build --workspace --bins
            return
        fi
    done
}

# The machine's firewall rulesets; counters change on their own, comment lines carry a date.
firewall_rulesets() {
    nft list ruleset 2>/dev/null | sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/'
    echo "--- iptables"
    iptables-save 2>/dev/null | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]/[0:0]/' || true
    echo "--- ip6tables"
    ip6tables-save 2>/dev/null | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]/[0:0]/' || true
}
# iptables (the nft flavour) creates a table and its base chains on first use and never
# removes them: once the test's rules are gone, an empty nat or filter table the baseline
# (the ruleset file given) did not have is that, and is removed. A table with any rule left
# stays, for the leak check.
remove_empty_tables_iptables_made() { # BASELINE_RULESET
    local family table
    for family in ip ip6; do
        for table in nat filter; do
            grep -qx "table $family $table {" "$1" && continue
            nft list table "$family" "$table" >/dev/null 2>&1 || continue
            if [[ $(nft -j list table "$family" "$table" | jq '[.nftables[] | select(.rule)] | length') == 0 ]]; then
                nft delete table "$family" "$table"
            fi
        done
    done
}
# The chains portmap and firewall share between attachments, and the rules that link them
# in: like the Go plugins, ours create them on first use and leave them after the last DEL.
# In iptables-save's words (as firewall_rulesets prints them).
CNI_SHARED_IPTABLES='-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
:CNI-ADMIN - [0:0]
:CNI-FORWARD - [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]'

# The CNI-* chains and rules in the iptables rulesets now that are not the shared ones above:
# after the last DEL, anything printed is a per-attachment rule left behind.
cni_rules_left() {
    firewall_rulesets | grep -E '^(:CNI-|-A .*CNI-)' | sort -u | grep -vxF -e "$CNI_SHARED_IPTABLES" || true
}

# Refuses to run (through the caller's `fail`) when the machine already has CNI-* chains:
# the test removes the shared ones it made at the end, and must not take a runtime's.
require_no_cni_chains() {
    if firewall_rulesets | grep -qE '^:CNI-'; then
        fail "the machine's iptables already has CNI-* chains (a runtime uses CNI here): refusing to touch them"
    fi
}

# Clean-up: the shared CNI-* chains, the rules jumping to them from the base chains, then
# the tables iptables made (remove_empty_tables_iptables_made BASELINE_RULESET).
remove_cni_chains() { # BASELINE_RULESET
    local cmd table rule chain
    for cmd in iptables ip6tables; do
        for table in nat filter; do
            "$cmd-save" -t "$table" 2>/dev/null | sed -nE 's/^-A ([A-Z]+ .*-j CNI-)/-D \1/p' |
                while read -r rule; do
                    eval "$cmd -t $table $rule"
                done
            for chain in $("$cmd-save" -t "$table" 2>/dev/null | sed -nE 's/^:(CNI-[^ ]+) .*/\1/p'); do
                "$cmd" -t "$table" -F "$chain"
            done
            for chain in $("$cmd-save" -t "$table" 2>/dev/null | sed -nE 's/^:(CNI-[^ ]+) .*/\1/p'); do
                "$cmd" -t "$table" -X "$chain"
            done
        done
    done
    remove_empty_tables_iptables_made "$1"
}
# fetch_page ADDRESS PORT: the page at http://ADDRESS:PORT/, retried for about 4 s while
# the server in the container or pod may still be starting.
fetch_page() {
    local _
    for _ in $(seq 20); do
        curl -fsS --max-time 2 "http://$1:$2/" 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}
root_links() { ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort; }
root_routes() { ip route show; ip -6 route show; }

# save_root_state DIR: the root namespace's rulesets, links and routes into DIR;
# changed_root_state DIR: prints what differs from them now, and fails if anything does.
save_root_state() {
    firewall_rulesets >"$1/ruleset"
    root_links >"$1/links"
    root_routes >"$1/routes"
}
changed_root_state() {
    local changed=0
    if ! diff -u "$1/ruleset" <(firewall_rulesets); then
        echo "LEAK: the machine's firewall rulesets changed (diff above)"; changed=1
    fi
    if ! diff -u "$1/links" <(root_links); then
        echo "LEAK: the machine's links changed (diff above)"; changed=1
    fi
    if ! diff -u "$1/routes" <(root_routes); then
        echo "LEAK: the machine's routes changed (diff above)"; changed=1
    fi
    return "$changed"
}

# The end of an end-to-end test's EXIT trap: removes $WORK, lists the timings, prints the
# verdict and exits with it. e2e_finish NAME STATUS LEAKS (STATUS: the test's exit status,
# LEAKS: 1 when the clean-up found state left behind).
e2e_finish() {
    local name=$1 status=$2 leaks=$3
    rm -rf "$WORK"
    if [[ -e $WORK ]]; then
        echo "LEAK: $WORK could not be removed"; leaks=1
    fi
    print_timings
    if ((status == 0 && leaks == 0)); then
        echo "$name: PASS"
    elif ((status == 0)); then
        echo "$name: FAIL: state left behind (see above)" >&2
        status=1
    else
        echo "$name: FAIL (exit $status)" >&2
    fi
    exit "$status"
}
