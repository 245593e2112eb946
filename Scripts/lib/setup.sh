# Sourced by Scripts/natlab, Scripts/test and Scripts/bench: installs the system packages natlab
# needs when they are missing (Debian/Ubuntu, as root), and knows how to build natlab.
# shellcheck shell=bash

NATLAB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# Build: libnl (netlink) and libnftables headers + pkg-config. Run: nftables, iproute2 (ip netns
# exec for users and the emitted shell scripts), conntrack, python3 (test traffic helpers).
NATLAB_PACKAGES=(pkg-config libnl-3-dev libnl-route-3-dev libnftables-dev nftables iproute2 conntrack python3)
# Interop peers the tests (Scripts/test) and benchmarks (Scripts/bench) run in lab namespaces.
NATLAB_TEST_PACKAGES+=(coturn)

natlab_install_packages() {
    local missing=() p
    for p in "${NATLAB_PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "natlab: missing packages: ${missing[*]} — run as root or: sudo apt-get install ${missing[*]}" >&2
        return 1
    fi
    echo "natlab: installing ${missing[*]}" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

natlab_require_swift() {
    command -v swift >/dev/null 2>&1 && return 0
    [ -x /opt/swift/usr/bin/swift ] && export PATH=/opt/swift/usr/bin:$PATH && return 0
    echo "natlab: Swift 6 toolchain not found (https://www.swift.org/install/linux/)" >&2
    return 1
}

# natlab_build CONFIG: builds bin natlab in CONFIG (debug|release) when missing or older than any source.
natlab_build() {
    local config=$1 bin="$NATLAB_ROOT/.build/$1/natlab"
    if [ -x "$bin" ] && [ -z "$(find "$NATLAB_ROOT/Sources" "$NATLAB_ROOT/Package.swift" -newer "$bin" -print -quit)" ]; then
        return 0
    fi
    echo "natlab: building ($config)…" >&2
    # Release links the Swift runtime and Foundation statically: ~5 ms less start-up per command.
    local static=(); [ "$config" = release ] && static=(--static-swift-stdlib)
    (cd "$NATLAB_ROOT" && swift build -c "$config" --product natlab "${static[@]}" >&2)
}

# Debian's coturn package starts a system turnserver (root namespace, /etc/turnserver.conf) when
# systemd runs: stop and disable it; tests and benchmarks start their own inside lab namespaces.
# (Never the init script's `stop`: it kills every process named turnserver, labs' included.)
natlab_no_system_turnserver() {
    [ -d /run/systemd/system ] || return 0
    if systemctl is-enabled --quiet coturn.service 2>/dev/null || systemctl is-active --quiet coturn.service 2>/dev/null; then
        echo "natlab: stopping and disabling the system coturn service (labs run their own)" >&2
        systemctl disable --now coturn.service >&2 || true
    fi
}

# Python packages the interop tests import (aioice), installed with `pip install --target` into
# .build/interop-python when missing: nothing of the system's Python changes (no PEP 668 override,
# no venv needed); the tests put that directory on PYTHONPATH (NATLAB_INTEROP_PYTHONPATH).
NATLAB_INTEROP_PYTHONPATH=${NATLAB_INTEROP_PYTHONPATH:-$NATLAB_ROOT/.build/interop-python}
natlab_install_python_interop() {
    if PYTHONPATH="$NATLAB_INTEROP_PYTHONPATH" python3 -c 'import aioice' 2>/dev/null; then return 0; fi
    if ! python3 -m pip --version >/dev/null 2>&1; then natlab_install_packages python3-pip || return 1; fi
    echo "natlab: installing aioice into $NATLAB_INTEROP_PYTHONPATH" >&2
    python3 -m pip install --quiet --disable-pip-version-check --target "$NATLAB_INTEROP_PYTHONPATH" aioice >&2
}
