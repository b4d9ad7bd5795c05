#!/usr/bin/env bash
# VM lane: runs the kernel-dependent integration tests (named vm_*, marked
# #[ignore = "... runs in the VM lane"]) inside a qemu guest that boots Debian's
# distribution kernel, because the kernel of our dev/CI machines lacks ipvlan,
# 802.1Q vlan, dummy links and bridge VLAN filtering.
#
# Usage: bash scripts/vm-lane.sh [options] [TEST_FILTER...]
#
#   TEST_FILTER...   libtest filters; default "vm_". Given filters replace the
#                    default (libtest ORs filters, so "vm_ vm_ipvlan" would not
#                    narrow anything); only #[ignore]d tests run either way.
#   --console        print the whole guest console log (live), not just its tail
#   --allow-empty    exit 0 when no test matches (else: exit 1, a lane that runs
#                    nothing must not look green); the guest still boots, as a
#                    smoke test of the lane itself
#   --timeout SECS   wall-clock limit for the guest (default 900, env VM_LANE_TIMEOUT)
#   --accel MODE     auto (default; KVM only if a probe boot works), tcg or kvm
#                    (env VM_LANE_ACCEL)
#   -h, --help
#
# Environment:
#   VM_LANE_TEST_BINS  explicit test executables to ship (space separated);
#                      skips the cargo builds (the plugins shipped are then
#                      whatever target/debug holds)
#   VM_LANE_PACKAGES   only these cargo packages' test executables (space
#                      separated; default: the whole workspace)
#   VM_LANE_MODULES    extra kernel modules to load in the guest
#   VM_LANE_ENV        extra KEY=VALUE words exported to the tests in the guest
#                      (they get CNI_BIN_DIR, VM_LANE=1, RUST_BACKTRACE=1)
#   VM_LANE_CACHE      cache directory (default: <repo>/.vm, git-ignored)
#   VM_LANE_TCG_TB_MB  TCG translation cache size in MiB (default 512)
#   CNI_BIN_DIR        plugins the tests run (default: <repo>/target/debug);
#                      shipped into the guest and set there
#
# Exit status: 0 all ran tests passed; 1 a test failed or no test ran;
# 2 the lane itself failed (install, build, guest did not finish); 64 usage.
# The last line is the summary our CI reads: "N passed, M failed".
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPT_DIR="$REPO_ROOT/scripts/vm"
CACHE=${VM_LANE_CACHE:-$REPO_ROOT/.vm}
CONSOLE_LOG="$CACHE/last-console.log"
TIMEOUT=${VM_LANE_TIMEOUT:-900}
ACCEL=${VM_LANE_ACCEL:-auto}
SHOW_CONSOLE=0
ALLOW_EMPTY=0
FILTERS=()

# Kernel modules the tests may need, loaded in this order; missing or built-in
# ones are skipped. crc32c_generic first: libcrc32c (needed by nf_tables,
# nf_conntrack) only soft-depends on it, which busybox's modprobe ignores.
MODULES=(crc32c_generic dummy veth bridge br_netfilter 8021q macvlan macvtap ipvlan ipvtap tun
    nf_tables nft_chain_nat nft_nat nft_masq nft_ct nft_compat nft_fib_inet
    nft_reject_inet nf_nat nf_conntrack nf_conntrack_netlink
    iptable_nat iptable_filter iptable_mangle ip6table_nat ip6table_filter
    ip6table_mangle xt_MASQUERADE xt_comment xt_multiport xt_mark xt_conntrack
    xt_addrtype xt_nat xt_tcpudp)
# shellcheck disable=SC2206
MODULES+=(${VM_LANE_MODULES:-})

# The Debian packages the guest is made of. They are downloaded and unpacked
# into $CACHE, never installed: bookworm's qemu-system-x86 7.2 conflicts with
# the image's newer qemu-utils (10.x, backports), so `apt-get install` fails.
QEMU_PKGS=(qemu-system-x86 qemu-system-common qemu-system-data seabios ipxe-qemu)
KERNEL_META=linux-image-amd64

APT_UPDATED=0
WORK=""

# Messages go to the script's original stderr, also from code running under
# a redirection (the INT/TERM trap fires inside boot's).
exec {LOG_FD}>&2
log() { printf 'vm-lane [%3ss]: %s\n' "$SECONDS" "$*" >&"$LOG_FD"; }
die() { log "ERROR: $*"; exit 2; }

QEMU_PID=""
TAIL_PID=""
cleanup() {
    if [[ -n "$QEMU_PID" ]]; then kill -TERM "$QEMU_PID" 2>/dev/null || true; fi
    if [[ -n "$TAIL_PID" ]]; then kill "$TAIL_PID" 2>/dev/null || true; fi
    if [[ -n "$WORK" && -d "$WORK" ]]; then rm -rf "$WORK"; fi
    return 0
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

parse_args() {
    while (($#)); do
        case "$1" in
            --console) SHOW_CONSOLE=1 ;;
            --allow-empty) ALLOW_EMPTY=1 ;;
            --timeout) TIMEOUT=${2:?--timeout needs seconds}; shift ;;
            --timeout=*) TIMEOUT=${1#*=} ;;
            --accel) ACCEL=${2:?--accel needs auto, tcg or kvm}; shift ;;
            --accel=*) ACCEL=${1#*=} ;;
            -h|--help) usage; exit 0 ;;
            --) shift; FILTERS+=("$@"); break ;;
            -*) log "unknown option $1"; usage >&2; exit 64 ;;
            *) FILTERS+=("$1") ;;
        esac
        shift
    done
    ((${#FILTERS[@]})) || FILTERS=(vm_)
    case "$ACCEL" in auto|tcg|kvm) ;; *) log "bad --accel $ACCEL"; exit 64 ;; esac
}

# ---------------------------------------------------------------- installing

# apt-get update only once, and only when a look-up or install needs it.
apt_update_once() {
    ((APT_UPDATED)) && return 1
    log "apt-get update"
    apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || die "apt-get update failed"
    APT_UPDATED=1
}

# --no-remove: never let an install take packages away (e.g. qemu-utils).
apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    log "apt-get install ${missing[*]}"
    until DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
        --no-remove "${missing[@]}" >"$CACHE/apt-install.log" 2>&1; do
        apt_update_once || { cat "$CACHE/apt-install.log" >&2; die "cannot install ${missing[*]}"; }
    done
}

# Candidate versions and Depends of the packages the guest is made of, with
# one apt-cache call each (every call reads all package lists: ~1 s).
declare -A APT_VER=() APT_DEPS=()
apt_resolve() {
    local pkgs=(qemu-system-x86 busybox-static "$KERNEL_META") p line cur=""
    APT_VER=(); APT_DEPS=()
    while read -r p line; do APT_VER[$p]=$line; done < <(apt-cache policy "${pkgs[@]}" 2>/dev/null |
        awk '/^[^ ].*:$/ {pkg = substr($0, 1, length($0) - 1)} /Candidate:/ {print pkg, $2}')
    while IFS= read -r line; do
        if [[ "$line" != " "* ]]; then cur=$line
        elif [[ "$line" =~ ^\ +Depends:\ ([^<][^ ]*) ]]; then APT_DEPS[$cur]+="${BASH_REMATCH[1]} "
        fi
    done < <(apt-cache depends qemu-system-x86 "$KERNEL_META" 2>/dev/null)
    for p in "${pkgs[@]}"; do
        if [[ -z "${APT_VER[$p]:-}" || "${APT_VER[$p]}" == "(none)" ]]; then
            # Empty or stale package lists: update once, then look again.
            apt_update_once && { apt_resolve; return; }
            die "apt knows no candidate for $p"
        fi
    done
}

# Downloads (not installs) packages and unpacks them into $1 with dpkg-deb -x.
# A .done stamp makes it idempotent and redoes a half-finished unpack.
fetch_and_unpack() {
    local dest=$1; shift
    [[ -f "$dest/.done" ]] && return 0
    local dl="$CACHE/debs"
    rm -rf "$dest"; mkdir -p "$dest" "$dl"
    log "downloading ${*}"
    # apt-get download writes into the current directory. The "_apt user"
    # sandbox warning for root-owned dirs is harmless.
    if ! (cd "$dl" && apt-get download -qq "$@" >"$dl/apt.log" 2>&1); then
        # Stale package lists name versions the mirror no longer has.
        if ! { apt_update_once && (cd "$dl" && apt-get download -qq "$@" >"$dl/apt.log" 2>&1); }; then
            cat "$dl/apt.log" >&2; die "apt-get download $* failed"
        fi
    fi
    local p deb
    for p in "$@"; do
        # shellcheck disable=SC2012 # Debian file names are plain
        deb=$(ls -t "$dl/${p%%=*}_"*.deb | head -n 1)
        dpkg-deb -x "$deb" "$dest"
        rm -f "$deb"
    done
    touch "$dest/.done"
}

install_host_tools() {
    local need=()
    command -v jq >/dev/null || need+=(jq)
    command -v cpio >/dev/null || need+=(cpio)
    command -v zstd >/dev/null || need+=(zstd)
    command -v objcopy >/dev/null || need+=(binutils)
    ((${#need[@]} == 0)) || apt_install "${need[@]}"
}

# qemu from bookworm, unpacked into $CACHE/qemu-<version>; its shared
# libraries (the Depends of qemu-system-x86) are ordinary apt installs.
install_qemu() {
    local ver=${APT_VER[qemu-system-x86]} libs=() p
    QEMU_ROOT="$CACHE/qemu-${ver//[:+~]/_}"
    for p in ${APT_DEPS[qemu-system-x86]}; do
        case "$p" in qemu-*|seabios|ipxe-qemu) ;; *) libs+=("$p") ;; esac
    done
    apt_install "${libs[@]}"
    fetch_and_unpack "$QEMU_ROOT" "${QEMU_PKGS[@]}"
    QEMU="$QEMU_ROOT/usr/bin/qemu-system-x86_64"
    local missing
    missing=$(ldd "$QEMU" | awk '/not found/ {print $1}')
    [[ -z "$missing" ]] || die "qemu needs libraries apt did not install: $missing"
}

# Debian's kernel: linux-image-amd64 is a metapackage; its first Depends names
# the real image package (e.g. linux-image-6.1.0-56-amd64).
install_kernel() {
    local pkg="" p
    for p in ${APT_DEPS[$KERNEL_META]:-}; do
        if [[ "$p" == linux-image-[0-9]* ]]; then pkg=$p; break; fi
    done
    [[ -n "$pkg" ]] || die "cannot resolve $KERNEL_META to a kernel package"
    KERNEL_ROOT="$CACHE/$pkg"
    KVER=${pkg#linux-image-}
    if [[ ! -f "$KERNEL_ROOT/.done" ]]; then
        fetch_and_unpack "$KERNEL_ROOT.tmp" "$pkg"
        # The .deb has no modules.dep (its postinst runs depmod): make one,
        # with busybox's depmod so the host needs no kmod.
        log "depmod $KVER"
        "$BUSYBOX" depmod -b "$KERNEL_ROOT.tmp" "$KVER"
        rm -rf "$KERNEL_ROOT"; mv "$KERNEL_ROOT.tmp" "$KERNEL_ROOT"
    fi
    VMLINUZ="$KERNEL_ROOT/boot/vmlinuz-$KVER"
    [[ -f "$VMLINUZ" ]] || die "no $VMLINUZ"
}

# busybox-static is unpacked, not installed: it conflicts with the `busybox`
# package some images have.
install_busybox() {
    local ver=${APT_VER[busybox-static]}
    local root="$CACHE/busybox-${ver//[:+~]/_}"
    fetch_and_unpack "$root" busybox-static
    BUSYBOX="$root/bin/busybox"
}

# ------------------------------------------------------------------ building

# Fills TESTS with "NAME<TAB>WORKDIR<TAB>PATH" lines for the test executables
# that contain at least one #[ignore]d test matching the filters.
collect_tests() {
    TESTS=()
    local candidates=()
    if [[ -n "${VM_LANE_TEST_BINS:-}" ]]; then
        local b
        for b in $VM_LANE_TEST_BINS; do
            [[ -x "$b" ]] || die "VM_LANE_TEST_BINS: $b is not an executable"
            b=$(readlink -f "$b")
            candidates+=("$(basename "$b")"$'\t'"$(dirname "$b")"$'\t'"$b")
        done
    else
        local json="$WORK/cargo-test.json" sel=(--workspace) p
        if [[ -n "${VM_LANE_PACKAGES:-}" ]]; then
            sel=(); for p in $VM_LANE_PACKAGES; do sel+=(-p "$p"); done
        fi
        log "cargo test ${sel[*]} --no-run"
        (cd "$REPO_ROOT" && cargo test "${sel[@]}" --no-run --message-format=json >"$json") ||
            die "cargo test --no-run failed"
        # name: <package dir relative to the repo>:<target kind>:<target name>;
        # cargo runs each test executable in its package's directory: so do we.
        mapfile -t candidates < <(jq -r --arg root "$REPO_ROOT/" '
            select(.reason == "compiler-artifact" and .executable != null and .profile.test)
            | (.manifest_path | rtrimstr("/Cargo.toml")) as $dir
            | [($dir | ltrimstr($root)) + ":" + .target.kind[0] + ":" + .target.name,
               $dir, .executable] | @tsv' "$json")
    fi

    # Ask each executable (on the host: listing runs no test) whether it has
    # ignored tests matching the filters, so the guest only runs those.
    local line name dir exe n
    for line in "${candidates[@]}"; do
        IFS=$'\t' read -r name dir exe <<<"$line"
        local listing
        if listing=$(cd "$dir" && "$exe" --list --ignored "${FILTERS[@]}" 2>/dev/null); then
            n=$(grep -c ': test$' <<<"$listing" || true)
            if ((n > 0)); then
                TESTS+=("$line"); log "  $name: $n test(s)"
            fi
        else
            # --list unsupported (harness = false?): ship it and let it run.
            TESTS+=("$line"); log "  $name: cannot list its tests, shipping it"
        fi
    done
}

# The plugins under test: every binary of the workspace, in target/debug. A
# CNI_BIN_DIR set on the host (as scripts/test.sh allows, e.g. /usr/lib/cni for
# the Go reference plugins) is shipped too and handed on to the tests.
build_plugins() {
    PLUGIN_DIR=${CNI_BIN_DIR:-$REPO_ROOT/target/debug}
    if [[ -n "${VM_LANE_TEST_BINS:-}" ]]; then
        # Explicit test executables: ship the plugins target/debug already has.
        mapfile -t PLUGINS < <(find "$REPO_ROOT/target/debug" -maxdepth 1 -type f -perm -u+x 2>/dev/null)
        log "shipping ${#PLUGINS[@]} prebuilt binaries from target/debug (VM_LANE_TEST_BINS set)"
    else
        log "cargo build --workspace --bins"
        (cd "$REPO_ROOT" && cargo build --workspace --bins --message-format=json >"$WORK/cargo-build.json") ||
            die "cargo build --bins failed"
        mapfile -t PLUGINS < <(jq -r 'select(.reason == "compiler-artifact" and .executable != null) | .executable' \
            "$WORK/cargo-build.json")
    fi
    if [[ -n "${CNI_BIN_DIR:-}" ]]; then
        [[ -d "$CNI_BIN_DIR" ]] || die "CNI_BIN_DIR=$CNI_BIN_DIR is not a directory"
        mapfile -t -O "${#PLUGINS[@]}" PLUGINS < <(find "${CNI_BIN_DIR%/}/" -maxdepth 1 -type f -perm -u+x)
        log "guest CNI_BIN_DIR=$PLUGIN_DIR (from the host's environment)"
    fi
}

# ----------------------------------------------------------------- initramfs

ROOT=""
declare -A COPY=()   # host files copied as they are
declare -A STRIP=()  # build artifacts, copied without their debug info
ELFS=()              # executables whose shared libraries are needed too

# Queue host files for the image (same path inside as outside).
want_file() { local f; for f; do COPY["$f"]=1; done; }
want_elf() { want_file "$@"; ELFS+=("$@"); }
# Debug builds are mostly DWARF, and the guest keeps everything in RAM.
want_artifact() { local f; for f; do STRIP["$f"]=1; done; ELFS+=("$@"); }

# Copies everything queued, in a few batched commands (one process per file
# would cost seconds). A path reached through a symlink (e.g. /usr/sbin/iptables
# -> ... -> xtables-nft-multi, libfoo.so.1 -> libfoo.so.1.2.3) becomes a
# symlink to the copied real file, so multi-call binaries keep their argv[0].
copy_queued() {
    local libs=() f
    # ldd lists the libraries of many files at once; a static binary (the Go
    # plugins) just says "not a dynamic executable".
    mapfile -t libs < <(printf '%s\0' "${ELFS[@]}" | xargs -0 -r ldd 2>/dev/null |
        awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $1 !~ /:$/ {print $1}' | sort -u)
    ((${#libs[@]})) && want_file "${libs[@]}"
    for f in "${!STRIP[@]}"; do unset 'COPY[$f]'; done

    local paths=() reals=() dirs=() i real canon
    mapfile -t paths < <(printf '%s\n' "${!COPY[@]}" | sort)
    if ((${#paths[@]})); then
        mapfile -t reals < <(readlink -f -- "${paths[@]}")
        mapfile -t dirs < <(for f in "${paths[@]}"; do printf '%s\n' "${f%/*}"; done | xargs -d '\n' readlink -f --)
        # No -p: coreutils 9.1's `cp -p --parents` fails on this machine kind
        # ("'usr/bin': No such file or directory").
        printf '%s\n' "${reals[@]}" | sort -u | xargs -d '\n' cp --parents -t "$ROOT"
        for i in "${!paths[@]}"; do
            real=${reals[$i]}; canon="${dirs[$i]}/${paths[$i]##*/}"
            if [[ "$canon" != "$real" && ! -e "$ROOT$canon" && ! -L "$ROOT$canon" ]]; then
                mkdir -p "$ROOT${canon%/*}"
                ln -s "$real" "$ROOT$canon"
            fi
        done
    fi
    for f in "${!STRIP[@]}"; do
        mkdir -p "$ROOT${f%/*}"
        objcopy --strip-debug "$f" "$ROOT$f" 2>/dev/null || cp -p "$f" "$ROOT$f"
    done
}

# Copies the needed modules and their dependencies (from the cached kernel's
# modules.dep). Debian 6.1 ships them uncompressed (.ko), which busybox's
# modprobe loads as they are.
put_modules() {
    local mdir="$KERNEL_ROOT/lib/modules/$KVER" m want=() files
    LOAD_MODULES=()
    for m in "${MODULES[@]}"; do
        m=${m//-/_}
        if grep -qE "/${m//_/[-_]}\.ko$" "$mdir/modules.builtin" 2>/dev/null; then
            continue
        elif grep -qE "^([^:]*/)?${m//_/[-_]}\.ko:" "$mdir/modules.dep"; then
            want+=("$m"); LOAD_MODULES+=("$m")
        else
            log "warning: kernel $KVER has no module $m"
        fi
    done
    files=$(for m in "${want[@]}"; do
        grep -E "^([^:]*/)?${m//_/[-_]}\.ko:" "$mdir/modules.dep" | tr -d ':' | tr ' ' '\n'
    done | sort -u)
    local dst="$ROOT/lib/modules/$KVER"
    mkdir -p "$dst"
    # shellcheck disable=SC2086 # module paths have no spaces
    (cd "$mdir" && cp --parents -t "$dst" $files modules.builtin modules.order)
    "$BUSYBOX" depmod -b "$ROOT" "$KVER"
}

build_initramfs() {
    log "building the initramfs"
    ROOT="$WORK/root"
    mkdir -p "$ROOT"/{usr/bin,usr/sbin,usr/lib,usr/lib64,proc,sys,dev,run,tmp,root,etc,var,vm-lane}
    # Mirror the host's merged /usr, so the library paths ldd reports are valid.
    local d f
    for d in bin sbin lib lib64; do
        if [[ -L "/$d" ]]; then ln -s "$(readlink "/$d")" "$ROOT/$d"; else mkdir -p "$ROOT/$d"; fi
    done
    # The plugins keep their state under /var/run.
    ln -s ../run "$ROOT/var/run"
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$ROOT/etc/passwd"
    printf 'root:x:0:\n' >"$ROOT/etc/group"
    for f in /etc/protocols /etc/services /etc/nsswitch.conf; do
        if [[ -f "$f" ]]; then want_file "$f"; fi
    done

    # iproute2 (ip, bridge) with its libraries: `ip` must be this one, not
    # busybox's applet, which knows no ipvlan, vlan or bridge options.
    local tool
    for tool in ip bridge; do
        f=$(command -v "$tool") || die "iproute2 ($tool) is not installed on the host"
        want_elf "$f" "/usr/sbin/$tool"
    done
    # nft and iptables (nft flavour) for the plugins' NAT/firewall code, with
    # the xtables extensions iptables dlopen()s (ldd does not see those).
    for tool in nft iptables ip6tables iptables-save iptables-restore ip6tables-save \
        ip6tables-restore iptables-legacy iptables-nft; do
        if f=$(command -v "$tool" 2>/dev/null); then want_elf "$f"; fi
    done
    if [[ -d /usr/lib/x86_64-linux-gnu/xtables ]]; then
        want_elf /usr/lib/x86_64-linux-gnu/xtables/*.so
    fi

    # The Go reference plugins, for side-by-side tests.
    for f in /usr/lib/cni/*; do
        if [[ -f "$f" && -x "$f" ]]; then want_artifact "$f"; fi
    done

    # Our plugins and test executables, at their host paths: tests find the
    # plugins through CNI_BIN_DIR or env!("CARGO_BIN_EXE_..").
    ((${#PLUGINS[@]} == 0)) || want_artifact "${PLUGINS[@]}"
    local line name dir exe
    for line in "${TESTS[@]}"; do
        IFS=$'\t' read -r name dir exe <<<"$line"
        want_artifact "$exe"
    done
    copy_queued

    # The workspace's sources (tracked and new, not ignored), so fixtures found
    # via CARGO_MANIFEST_DIR exist; small next to the binaries.
    mkdir -p "$ROOT$REPO_ROOT"
    # shellcheck disable=SC2016 # $f belongs to the inner sh
    (cd "$REPO_ROOT" && git ls-files -z --cached --others --exclude-standard |
        xargs -0 -r sh -c 'for f; do [ -f "$f" ] && printf "%s\0" "$f"; done; true' sh |
        cpio --null -pdm --quiet "$ROOT$REPO_ROOT")

    put_modules

    # busybox last: its applet links must not shadow (or be written through
    # by) the real tools above. /sbin/modprobe is what the kernel runs for
    # on-demand module loading.
    cp "$BUSYBOX" "$ROOT/usr/bin/busybox"
    local applet
    for applet in $("$BUSYBOX" --list); do
        if [[ ! -e "$ROOT/usr/bin/$applet" && ! -L "$ROOT/usr/bin/$applet" &&
              ! -e "$ROOT/usr/sbin/$applet" && ! -L "$ROOT/usr/sbin/$applet" ]]; then
            ln -s busybox "$ROOT/usr/bin/$applet"
        fi
    done
    ln -sf ../bin/busybox "$ROOT/usr/sbin/modprobe"

    # The plan for the guest's init (see scripts/vm/init.sh).
    install -m 0755 "$SCRIPT_DIR/init.sh" "$ROOT/init"
    printf '%s\n' "${LOAD_MODULES[@]}" >"$ROOT/vm-lane/modules"
    printf '%s\n' "${FILTERS[@]}" >"$ROOT/vm-lane/filters"
    { ((${#TESTS[@]} == 0)) || printf '%s\n' "${TESTS[@]}"; } >"$ROOT/vm-lane/tests"
    # shellcheck disable=SC2086 # VM_LANE_ENV is a space-separated list
    printf '%s\n' "CNI_BIN_DIR=$PLUGIN_DIR" "VM_LANE=1" "RUST_BACKTRACE=1" ${VM_LANE_ENV:-} >"$ROOT/vm-lane/env"

    # zstd -1: the kernel decompresses it quickly even under TCG, and the
    # guest's 1 GiB holds it easily.
    # In this run's temp dir: several people may run the lane at once.
    INITRAMFS="$WORK/initramfs.cpio.zst"
    (cd "$ROOT" && find . -print0 | LC_ALL=C sort -z |
        cpio --null --create --format=newc --owner=0:0 --quiet) | zstd -q -1 -T0 -f -o "$INITRAMFS"
    log "initramfs: $(du -h "$INITRAMFS" | cut -f1) compressed, $(du -sh "$ROOT" | cut -f1) unpacked"
    rm -rf "$ROOT"
}

# ------------------------------------------------------------------- booting

# Boots the guest once; returns qemu's (or timeout's) exit status.
#   $1 accel (tcg|kvm)  $2 timeout  $3 log file  $4 extra kernel arguments
boot() {
    local accel=$1 secs=$2 out=$3 extra=${4:-}
    local args=(-m 1024 -smp 2 -nographic -no-reboot -monitor none -serial "file:$out"
        -vga none -nic none
        # seabios and the option ROMs live in these unpacked package dirs
        -L "$QEMU_ROOT/usr/share/qemu" -L "$QEMU_ROOT/usr/share/seabios" -L "$QEMU_ROOT/usr/lib/ipxe/qemu"
        -kernel "$VMLINUZ" -initrd "$INITRAMFS"
        -append "console=ttyS0 quiet panic=-1 $extra")
    if [[ "$accel" == kvm ]]; then
        args+=(-enable-kvm -cpu host)
    else
        # -cpu max: the host's Rust binaries may use instructions qemu64 lacks.
        # tb-size: TCG's translated-code cache defaults to 1 GiB, held by the
        # host on top of the guest's RAM. Measured on the ipvlan tests: 1024
        # -> qemu RSS 1.5 GiB; 512 -> 0.95 GiB, about as fast; 256 -> 0.65
        # GiB but ~40% slower (more retranslation).
        args+=(-accel "tcg,tb-size=${VM_LANE_TCG_TB_MB:-512}" -cpu max)
    fi
    : >"$out"; : >"$out.qemu"
    local rc=0
    # In the background, then wait: a Ctrl-C or TERM to this script runs its
    # trap at once, which stops qemu (timeout runs it in its own process
    # group, out of reach of the terminal's Ctrl-C). The braces' redirection
    # catches bash's "Aborted" notice when qemu dies of a signal (as it does
    # when KVM is unusable).
    {
        # GNU time, when there, reports qemu's peak RSS (for the log).
        local timer=()
        if [[ -x /usr/bin/time ]]; then timer=(/usr/bin/time -f '%M' -o "$out.rss"); fi
        timeout --kill-after=10 "$secs" "${timer[@]}" "$QEMU" "${args[@]}" </dev/null >>"$out.qemu" 2>&1 &
        QEMU_PID=$!
        wait "$QEMU_PID" || rc=$?
    } 2>>"$out.qemu"
    QEMU_PID=""
    return "$rc"
}

# KVM only if /dev/kvm exists AND a probe boot reaches init: on nested KVM the
# guest can die with an emulation error, while TCG always works. The verdict
# is cached per kernel and qemu.
choose_accel() {
    [[ "$ACCEL" == auto ]] || { log "accelerator: $ACCEL (forced)"; return 0; }
    ACCEL=tcg
    [[ -r /dev/kvm && -w /dev/kvm ]] || { log "accelerator: tcg (no usable /dev/kvm)"; return 0; }
    local stamp
    stamp="$CACHE/accel-probe-$KVER-$(basename "$QEMU_ROOT")"
    if [[ ! -f "$stamp" ]]; then
        log "probing KVM with a short boot"
        local out="$WORK/kvm-probe.log"
        if boot kvm 30 "$out" vmlane.probe=1 && grep -q '@@VM-LANE PROBE-OK' "$out"; then
            echo kvm >"$stamp"
        else
            echo tcg >"$stamp"
            log "KVM probe failed ($(tail -n 3 "$out.qemu" 2>/dev/null | tr '\n' ' '))"
        fi
    fi
    ACCEL=$(cat "$stamp")
    log "accelerator: $ACCEL"
}

run_guest() {
    log "booting the guest ($ACCEL, timeout ${TIMEOUT}s); console: $CONSOLE_LOG"
    # The run writes its own log, copied to $CONSOLE_LOG when it ends, so
    # concurrent runs do not mix their consoles.
    local log="$WORK/console.log"
    if ((SHOW_CONSOLE)); then
        : >"$log"
        tail -n +1 -F "$log" 2>/dev/null & TAIL_PID=$!
    fi
    local t0 t1
    t0=$(date +%s.%N)
    QEMU_RC=0
    boot "$ACCEL" "$TIMEOUT" "$log" || QEMU_RC=$?
    t1=$(date +%s.%N)
    if [[ -n "$TAIL_PID" ]]; then
        sleep 0.5; kill "$TAIL_PID" 2>/dev/null || true; wait "$TAIL_PID" 2>/dev/null || true; TAIL_PID=""
    fi
    GUEST_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
    QEMU_RSS=""
    local kb
    kb=$(tail -n 1 "$log.rss" 2>/dev/null || true)
    if [[ "$kb" =~ ^[0-9]+$ ]]; then QEMU_RSS=", qemu peak RSS $((kb / 1024)) MiB"; fi
    # qemu's own messages (not the guest's) go to a side file; keep them in
    # the log so a failure shows them.
    if [[ -s "$log.qemu" ]]; then
        { echo "---- qemu (host side) ----"; cat "$log.qemu"; } >>"$log"
    fi
    cp "$log" "$CONSOLE_LOG"
}

# ------------------------------------------------------------------- verdict

# Reads the markers; prints per-executable lines and "N passed, M failed".
verdict() {
    local clean="$WORK/console.txt"
    # Without the serial line's CRs and SeaBIOS's terminal escapes.
    tr -d '\r' <"$CONSOLE_LOG" | sed -E 's/\x1b(\[[0-9;?]*[A-Za-z]|c)//g' >"$clean"
    local passed=0 failed=0 bad_exes=0 ran_exes=0 finished=0 line name status summary p f
    grep -q '@@VM-LANE DONE' "$clean" && finished=1
    while IFS= read -r line; do
        name=$(sed -E 's/.*name=([^ ]+).*/\1/' <<<"$line")
        status=$(sed -E 's/.*status=([0-9]+).*/\1/' <<<"$line")
        summary=${line#* :: }
        p=$(sed -nE 's/.* ([0-9]+) passed;.*/\1/p' <<<"$summary"); p=${p:-0}
        f=$(sed -nE 's/.* ([0-9]+) failed;.*/\1/p' <<<"$summary"); f=${f:-0}
        ran_exes=$((ran_exes + 1))
        # A non-zero exit without a failed test (crash, abort) still fails.
        if [[ "$status" != 0 ]]; then
            bad_exes=$((bad_exes + 1))
            ((f > 0)) || f=1
            log "FAIL $name (exit $status): $summary"
        else
            log "ok   $name: $summary"
        fi
        passed=$((passed + p)); failed=$((failed + f))
    done < <(grep -o '@@VM-LANE RESULT .*' "$clean")
    grep -o '@@VM-LANE MODULE-FAILED .*' "$clean" | sed 's/^@@VM-LANE /vm-lane: warning: /' >&2 || true

    local rc=0 why="" selfcheck
    selfcheck=$(grep -o '@@VM-LANE SELFCHECK .*' "$clean" | head -n 1 || true)
    if ((!finished)); then
        rc=2
        if ((QEMU_RC == 124 || QEMU_RC == 137)); then
            why="guest timed out after ${TIMEOUT}s"
        else
            why="guest did not finish (qemu exit $QEMU_RC)"
        fi
        # The executable that was running never reported: count it failed.
        local last_begin
        last_begin=$(grep -o '@@VM-LANE BEGIN .*' "$clean" | tail -n 1 || true)
        if [[ -n "$last_begin" ]] && ! grep -q "RESULT ${last_begin#*BEGIN }" "$clean"; then
            failed=$((failed + 1)); log "FAIL ${last_begin#*name=} (no result)"
        fi
    elif [[ "$selfcheck" != "@@VM-LANE SELFCHECK ok" ]]; then
        rc=2; why="the guest's kernel self-check failed: ${selfcheck:-no result}"
    elif ((bad_exes > 0 || failed > 0)); then
        rc=1; why="$failed test(s) failed"
    elif ((passed == 0)); then
        if ((ALLOW_EMPTY)); then
            why="no test matched ${FILTERS[*]} (allowed by --allow-empty)"
        else
            rc=1; why="no test ran (filters: ${FILTERS[*]}); use --allow-empty to accept that"
        fi
    fi

    if ((rc != 0)); then
        if ((SHOW_CONSOLE)); then :; else
            log "---- last 60 lines of $CONSOLE_LOG ----"
            tail -n 60 "$clean" >&2
            log "---- end of console tail (whole log: --console or $CONSOLE_LOG) ----"
        fi
        log "FAILED: $why"
    else
        log "guest boot-to-poweroff ${GUEST_SECS}s ($ACCEL${QEMU_RSS})${why:+; $why}"
    fi
    # With --allow-empty and nothing to run, no "0 passed" line: CI would read
    # it as this run's verdict ("ran no test").
    if ((passed + failed > 0 || rc != 0)); then
        echo "$passed passed, $failed failed"
    else
        echo "vm-lane: no test ran (skipped)"
    fi
    return "$rc"
}

main() {
    parse_args "$@"
    local t0=$SECONDS
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/vm-lane.XXXXXX")
    mkdir -p "$CACHE"
    install_host_tools
    collect_tests
    build_plugins
    if ((${#TESTS[@]} == 0)); then
        if ((ALLOW_EMPTY)); then
            log "no test executable has an ignored test matching '${FILTERS[*]}': booting the guest as a smoke test only"
        else
            log "no test executable has an ignored test matching '${FILTERS[*]}'"
            log "(kernel-dependent tests are named vm_* and marked #[ignore = \"... runs in the VM lane\"])"
            log "FAILED: nothing to run; pass --allow-empty to accept an empty lane"
            echo "0 passed, 0 failed"
            return 1
        fi
    fi
    # One install at a time per cache (apt and the unpacking are not safe to
    # run twice at once); the lock goes with this shell.
    exec {lock_fd}>"$CACHE/.install.lock"
    flock "$lock_fd"
    apt_resolve
    install_busybox
    install_qemu
    install_kernel
    flock -u "$lock_fd"
    build_initramfs
    choose_accel
    run_guest
    local rc=0
    verdict || rc=$?
    log "lane took $((SECONDS - t0))s"
    return "$rc"
}

main "$@"
