# Shared by the scripts in this directory (sourced, not run).

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
        DEBIAN_FRONTEND=noninteractive apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    fi
}
