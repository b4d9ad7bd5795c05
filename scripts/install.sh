#!/usr/bin/env bash
# Installs the release's plugins into a CNI bin directory, keeping what they replace.
#
#   bash scripts/install.sh [--dir D] [--from TGZ]   install (D defaults to /opt/cni/bin,
#                                                    TGZ to the tarball scripts/release.sh
#                                                    made in dist/)
#   bash scripts/install.sh --restore [--dir D]      put back what the install replaced
#
# The tarball is checked against the `.sha256` file beside it when there is one. Each
# binary the install replaces is kept in D/.cni-rs-backup/ (runtimes look plugins up by
# name in D and never look into it); a second install keeps the first backup, so
# --restore always returns to the state before our first install: replaced binaries come
# back byte for byte, binaries that did not exist before are removed. Every file is
# written under a temporary name and renamed into place, so a runtime calling a plugin
# meanwhile runs either the old binary or the new one, never a partial file.
set -euo pipefail

usage() {
    echo "usage: $0 [--dir DIR] [--from TGZ] | --restore [--dir DIR]" >&2
    exit 2
}
die() {
    echo "install: $*" >&2
    exit 1
}

dir=/opt/cni/bin
from=
restore=0
while (($#)); do
    case $1 in
    --dir) (($# >= 2)) || usage; dir=$2; shift 2 ;;
    --from) (($# >= 2)) || usage; from=$2; shift 2 ;;
    --restore) restore=1; shift ;;
    *) usage ;;
    esac
done
# Paths given relative to the caller's directory; the default tarball is the repository's.
dir=$(realpath -m "$dir")
[[ -z $from ]] || from=$(realpath -m "$from")
cd "$(dirname "${BASH_SOURCE[0]}")/.."
backup=$dir/.cni-rs-backup
# Names of the binaries that did not exist before the first install, one per line.
added=$backup/.added

# Renames SRC to DIR/NAME after copying it beside its destination (same filesystem).
put_in_place() { # SRC NAME
    local tmp
    tmp=$(mktemp "$dir/.$2.XXXXXX")
    cp -p "$1" "$tmp"
    mv -f "$tmp" "$dir/$2"
}

restore() {
    [[ -d $backup ]] || die "nothing to restore: $backup does not exist"
    local file name
    for file in "$backup"/*; do
        [[ -f $file ]] || continue
        name=${file##*/}
        put_in_place "$file" "$name"
        echo "restored $dir/$name"
    done
    if [[ -f $added ]]; then
        while IFS= read -r name; do
            rm -f "${dir:?}/$name"
            echo "removed $dir/$name"
        done <"$added"
    fi
    rm -rf "$backup"
}

install_release() {
    if [[ -z $from ]]; then
        from=$(find dist -maxdepth 1 -name 'cni-plugins-linux-amd64-v*.tgz' 2>/dev/null | sort | tail -n 1)
        [[ -n $from ]] || die "no tarball in dist/: run bash scripts/release.sh, or give --from"
    fi
    [[ -f $from ]] || die "$from: no such file"
    if [[ -f $from.sha256 ]]; then
        (cd "$(dirname "$from")" && sha256sum --check --status "$(basename "$from").sha256") ||
            die "$from does not match $from.sha256"
    fi
    local unpacked file name
    unpacked=$(mktemp -d)
    # shellcheck disable=SC2064 # expand now: the variable is local
    trap "rm -rf '$unpacked'" EXIT
    tar -C "$unpacked" -xzf "$from"
    mkdir -p "$dir" "$backup"
    # The plugins are the executables at the tarball's top level (README.md and LICENSE
    # are not installed).
    for file in "$unpacked"/*; do
        [[ -f $file && -x $file ]] || continue
        name=${file##*/}
        if [[ ! -e $backup/$name ]] && ! grep -qxF "$name" "$added" 2>/dev/null; then
            if [[ -e $dir/$name ]]; then
                cp -p "$dir/$name" "$backup/$name"
            else
                echo "$name" >>"$added"
            fi
        fi
        put_in_place "$file" "$name"
        echo "installed $dir/$name"
    done
}

if ((restore)); then restore; else install_release; fi
