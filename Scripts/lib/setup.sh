# Sourced by Scripts/natlab, Scripts/test and Scripts/bench: installs the system packages natlab
# needs when they are missing (Debian/Ubuntu, as root), and knows how to build natlab.
# shellcheck shell=bash

NATLAB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# Build: libnl (netlink) and libnftables headers + pkg-config. Run: nftables, iproute2 (ip netns
# exec for users and the emitted shell scripts), conntrack, python3 (test traffic helpers).
NATLAB_PACKAGES=(pkg-config libnl-3-dev libnl-route-3-dev libnftables-dev nftables iproute2 conntrack python3)

# Test-only packages (Scripts/test installs them; natlab itself never needs them).
# STUN interop tests: coturn's turnutils_stunclient, turnutils_natdiscovery, turnserver (also the
# benchmark baseline).
NATLAB_TEST_PACKAGES=(coturn)

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

# Python packages the tests need (aioice: the foreign agent Scripts/aioice-agent.py), in a venv of
# their own under .build/pyenv, so the system's Python is never changed. The tests find it there
# (or at $NATLAB_PYTHON). python3-venv comes from Debian when `python3 -m venv` is missing.
natlab_install_python_test_deps() {
    local venv="$NATLAB_ROOT/.build/pyenv"
    export NATLAB_PYTHON="$venv/bin/python"
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import aioice" 2>/dev/null; then return 0; fi
    if ! python3 -m venv --help >/dev/null 2>&1; then natlab_install_packages python3-venv || return 1; fi
    echo "natlab: installing aioice into $venv" >&2
    mkdir -p "$NATLAB_ROOT/.build"
    python3 -m venv "$venv" >&2 && "$venv/bin/pip" install -q aioice >&2
}

natlab_require_swift() {
    command -v swift >/dev/null 2>&1 && return 0
    [ -x /opt/swift/usr/bin/swift ] && export PATH=/opt/swift/usr/bin:$PATH && return 0
    echo "natlab: Swift 6 toolchain not found (https://www.swift.org/install/linux/)" >&2
    return 1
}

# natlab_build CONFIG: builds bin natlab in CONFIG (debug|release) when missing or older than any source,
# or than this file (the build's flags are here: a binary built with other flags is stale too).
natlab_build() {
    local config=$1 bin="$NATLAB_ROOT/.build/$1/natlab"
    if [ -x "$bin" ] && [ -z "$(find "$NATLAB_ROOT/Sources" "$NATLAB_ROOT/Package.swift" "$NATLAB_ROOT/Scripts/lib/setup.sh" \
                                     -newer "$bin" -print -quit)" ]; then
        return 0
    fi
    echo "natlab: building ($config)…" >&2
    # Release links the Swift runtime and Foundation statically (~5 ms less start-up per command), as a
    # position-dependent executable (a PIE of this size makes the dynamic loader apply ~98,000 relative
    # relocations at every start: median `natlab --version` 7.8 -> 6.6 ms) and without exporting its
    # 19,000 symbols (the Swift runtime's start-up dladdr scans them all: 6.55 -> 6.16 ms), 2026-11-29.
    # It also links libstdc++ statically (the Swift runtime is C++): loading libstdc++.so cost every
    # natlab process ~0.75 ms at start (C "hello" with and without it: 1.67 vs 0.93 ms), the roles too
    # (`Scripts/bench ab`, two-homes `up`: -2.7 ms; --no-roles: -1.2 ms), 2026-11-29. Likewise libnl-3,
    # libnl-route-3 and libgcc_s (2026-11-29: `natlab --version` 2.85 -> 2.64 ms, `natlab validate`
    # 4.71 -> 4.40 ms, 300 alternated spawns each); only libc and libm stay shared (glibc's libm.a
    # needs libc.a's internals).
    # And without SwiftPM's RUNPATH $ORIGIN: the binary needs no library of its own directory, but the
    # dynamic loader looked there first, 49 failed openat/stat calls into .build per start.
    # Every module built from source (ours and the packages') gets concrete generic types' metadata
    # from direct accessor calls instead of mangled names: the runtime resolves a mangled name by
    # checking each generic requirement with a linear scan of all 7,591 conformance records (Set<String>
    # needs String: Hashable, a Codable type's keyed container needs CodingKeys: CodingKey). That was
    # ~20 of the ~50 scans of `up --emit-shell` (uprobes on the scan), and with it `--version` 3.59 ->
    # 3.23 ms and `validate` 5.40 -> 4.58 ms (300 alternated spawns each), `up --no-roles` -1.3 ms
    # (`Scripts/bench ab`, 41 rounds), for +124 KB of code, 2026-11-30. The remaining scans are casts
    # (Mirror, `as?`) and stdlib code, which is prebuilt.
    local static=() pkgconfig=${PKG_CONFIG_PATH:-}
    if [ "$config" = release ]; then
        static=(--static-swift-stdlib --disable-local-rpath -Xlinker --no-pie -Xlinker --no-export-dynamic
                -Xswiftc -Xclang-linker -Xswiftc -static-libgcc
                -Xswiftc -Xfrontend -Xswiftc -disable-concrete-type-metadata-mangled-name-accessors)
        local dir; dir=$(natlab_static_libs_dir)
        static+=(-Xswiftc "-L$dir")
        [ -f "$dir/pkgconfig/libnl-3.0.pc" ] && pkgconfig="$dir/pkgconfig${pkgconfig:+:$pkgconfig}"
    fi
    (cd "$NATLAB_ROOT" && PKG_CONFIG_PATH="$pkgconfig" swift build -c "$config" --product natlab "${static[@]}" >&2) || return
    # The binary is then written again, in 4 MB writes, and replaces the linker's file. The linker
    # leaves it in the page cache as 4 KB pages; written in large pieces, the kernel keeps it in
    # large folios (ext4, Linux 6.16 and later), and the kernel maps each aligned 2 MB of natlab's code
    # whole: `natlab --version` took 307 page faults, now 223 (`perf stat -r 50`); against a copy
    # written in 4 KB writes (306 faults, as the linker's), `--version` 4.19 -> 3.50 ms and `validate`
    # 5.97 -> 4.90 ms (300 alternated spawns), `up` -2.6 ms with its roles (`Scripts/bench ab`), `up
    # --no-roles` 1,023 -> 879 faults, 2026-11-30. A `cp` (copy_file_range) keeps the small pages: 298
    # faults. The new file is also what makes the binary newer than its inputs when SwiftPM had
    # nothing to do (a comment changed here, say); else every run would go through SwiftPM again.
    natlab_rewrite_in_large_pieces "$bin"
}

natlab_rewrite_in_large_pieces() {
    dd if="$1" of="$1.tmp" bs=4M status=none && chmod 755 "$1.tmp" && mv -f "$1.tmp" "$1"
}

# natlab_keep_in_large_pages BIN…: writes each BIN again (as natlab_build does) unless the page cache
# holds its code in 2 MB pieces. The kernel keeps a file's pages only until it needs the memory or
# the cache is dropped (a reboot, a restored VM snapshot, `drop_caches`); it then reads the binary
# back in small pieces, on this VM in readahead windows of up to 8 MB, and they stay small for as
# long as they stay cached. Measured on 2026-11-30 with two copies of one binary, one in each state:
# `up --no-roles` 1,020 against 872 page faults, and `Scripts/bench ab` (41 rounds) -0.88 ms per
# round for the copy in large pieces (interval -1.60 to +0.21). Scripts/bench calls this before measuring, so that its figures are those of natlab as built,
# whatever happened to the page cache since the build, and so that `bench ab` compares two binaries
# in the same state (a `cp` leaves a copy in small pieces). The check maps the file's first 2 MB at a
# 2 MB-aligned address and reads one byte: the kernel maps a 2 MB piece with one page-table entry,
# which /proc/self/smaps reports as FilePmdMapped.
natlab_keep_in_large_pages() {
    local bin
    for bin in "$@"; do
        python3 -I -S - "$bin" <<'PY' && continue
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
PIECE = 2 << 20
fd = os.open(sys.argv[1], os.O_RDONLY)
if os.fstat(fd).st_size < 2 * PIECE:
    sys.exit(0)                                                           # too small to matter
area = libc.mmap(None, 2 * PIECE, 0, 0x22, -1, 0)                        # PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS
at = libc.mmap((area + PIECE - 1) & ~(PIECE - 1), PIECE, 1, 0x11, fd, 0)  # PROT_READ, MAP_SHARED|MAP_FIXED
ctypes.string_at(at, 1)
inside, mapped = False, 0
for line in open("/proc/self/smaps"):
    if not line[0].isupper():
        inside = int(line.split("-")[0], 16) == at
    elif inside and line.startswith("FilePmdMapped:"):
        mapped = int(line.split()[1])
sys.exit(0 if mapped else 1)
PY
        echo "natlab: the page cache holds $bin in small pieces: writing it again, in large ones" >&2
        natlab_rewrite_in_large_pieces "$bin" || echo "natlab: could not write $bin again; measuring it as it is" >&2
    done
}

# natlab_static_libs_dir: prints a directory that holds only the static archives the release binary
# links instead of shared libraries: gcc's libstdc++.a, and libnl's libnl-3.a and libnl-route-3.a
# (from libnl-3-dev and libnl-route-3-dev) with pkg-config files that point at them. A linker takes
# the first directory of its search path that has the .so or the .a:
# - Swift's -static-stdlib passes a plain -lstdc++, and a -L given to swiftc comes before gcc's own
#   directory (which has both);
# - SwiftPM puts the -L of a system library's pkg-config file (Debian's: /usr/lib/x86_64-linux-gnu,
#   which has both) before that -L, so for libnl the pkg-config files here replace Debian's
#   (PKG_CONFIG_PATH), naming this directory.
# An archive that is missing is left out; that library is then linked shared, as before.
natlab_static_libs_dir() {
    local archive dir="$NATLAB_ROOT/.build/static-libs"
    mkdir -p "$dir/pkgconfig"
    archive=$(gcc -print-file-name=libstdc++.a 2>/dev/null) && [ -f "$archive" ] && ln -sfn "$archive" "$dir/libstdc++.a"
    local libdir; libdir=$(pkg-config --variable=libdir libnl-3.0 2>/dev/null) || libdir=/usr/lib/x86_64-linux-gnu
    rm -f "$dir"/pkgconfig/*.pc
    if [ -f "$libdir/libnl-3.a" ] && [ -f "$libdir/libnl-route-3.a" ]; then
        ln -sfn "$libdir/libnl-3.a" "$dir/libnl-3.a"
        ln -sfn "$libdir/libnl-route-3.a" "$dir/libnl-route-3.a"
        local cflags; cflags=$(pkg-config --cflags libnl-3.0 2>/dev/null) || cflags=-I/usr/include/libnl3
        printf 'Name: libnl\nDescription: libnl-3, static (natlab release build)\nVersion: %s\nLibs: -L%s -lnl-3\nCflags: %s\n' \
            "$(pkg-config --modversion libnl-3.0 2>/dev/null || echo 3)" "$dir" "$cflags" > "$dir/pkgconfig/libnl-3.0.pc"
        printf 'Name: libnl-route\nDescription: libnl-route-3, static (natlab release build)\nVersion: %s\nRequires: libnl-3.0\nLibs: -L%s -lnl-route-3\nCflags: %s\n' \
            "$(pkg-config --modversion libnl-route-3.0 2>/dev/null || echo 3)" "$dir" "$cflags" > "$dir/pkgconfig/libnl-route-3.0.pc"
    fi
    echo "$dir"
}

# Debian's coturn package can start a system turnserver that holds port 3478 in the host's namespace:
# under systemd coturn.service (enabled on install), under sysvinit /etc/init.d/coturn when
# /etc/default/coturn sets TURNSERVER_ENABLED=1. natlab's tests and benchmarks start their own
# turnserver explicitly, so disable and stop that service — and only it: never `/etc/init.d/coturn
# stop` (its start-stop-daemon --exec kills every turnserver on the machine, other labs' too).
natlab_quiet_coturn() {
    [ "$(id -u)" -eq 0 ] || return 0
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        if systemctl is-enabled --quiet coturn 2>/dev/null || systemctl is-active --quiet coturn 2>/dev/null; then
            echo "natlab: disabling and stopping the system coturn service (it would hold port 3478)" >&2
            systemctl disable --now coturn >&2 || true
        fi
    elif grep -qs '^[[:space:]]*TURNSERVER_ENABLED=1' /etc/default/coturn; then
        echo "natlab: disabling the system coturn service (TURNSERVER_ENABLED in /etc/default/coturn)" >&2
        sed -i 's/^[[:space:]]*TURNSERVER_ENABLED=1/#TURNSERVER_ENABLED=1/' /etc/default/coturn
        # The service's daemon: its pidfile, started with the system configuration.
        local pid; pid=$(cat /var/run/turnserver.pid 2>/dev/null || true)
        if [ -n "$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- '-c /etc/turnserver.conf'; then
            kill "$pid" || true
        fi
    fi
}

