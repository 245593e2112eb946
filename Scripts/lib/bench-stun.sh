# shellcheck shell=bash
# Scripts/bench stun [RUNS] — sourced by Scripts/bench after set-up; $bin is the release natlab.
#
# Binding requests per second: natlab's STUN server vs coturn's turnserver (STUN only), each in turn
# in the same lab node on the same two addresses and ports (RFC 5780 mode: A:3478, A:3479, B:3478,
# B:3479), driven by the same load generator (`natlab bench-client stun`: closed loop, sendmmsg/
# recvmmsg, a window of outstanding requests per socket) from a client node on the same segment. No
# NAT on the path. RUNS rounds (default 5), alternating which server goes first; medians; ratio.
# Numbers, not assertions.
#
# Knobs (environment): DURATION (measured seconds per run, default 5), CLIENT_THREADS (1),
# CLIENT_SOCKETS (8), WINDOW (32 requests outstanding per socket), SERVER_THREADS (natlab's event
# loops; default: its own default, one per core). coturn runs with its defaults (relay threads = CPUs).
runs=${1:-5}
command -v turnserver >/dev/null || natlab_install_packages coturn
natlab_quiet_coturn
python3 - "$bin" "$runs" <<'PY'
import json, os, signal, statistics, subprocess, sys, tempfile, time

natlab, runs = sys.argv[1], int(sys.argv[2])
duration = float(os.environ.get("DURATION", "5"))
threads = os.environ.get("CLIENT_THREADS", "1")
sockets = os.environ.get("CLIENT_SOCKETS", "8")
window = os.environ.get("WINDOW", "32")
server_threads = os.environ.get("SERVER_THREADS")
lab = "bench-stun"
topology = """name: bench-stun
hosts:
  srv: { attach: internet }
  cli: { attach: internet }
"""

def run(*cmd, **kw):
    return subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)

subprocess.run([natlab, "gc"], stdout=subprocess.DEVNULL)
with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
    f.write(topology)
    path = f.name
r = run(natlab, "up", path, "--name", lab, "--json")
os.unlink(path)
if r.returncode != 0:
    sys.exit(f"bench: natlab up failed:\n{r.stderr}")
pidfile = f"/tmp/natlab-bench-stun-turnserver-{os.getpid()}.pid"
servers = {}
try:
    plan = json.loads(r.stdout)["plan"]["nodes"]
    srv = next(n for n in plan if n["name"] == "srv")
    a = next(i for i in srv["interfaces"] if i["name"] == "eth0")["addresses"][0].split("/")[0]
    # The second address: the last usable one of the core subnet below the core's own (.254).
    b = a.rsplit(".", 1)[0] + ".200"
    r = run(natlab, "exec", lab, "srv", "--", "ip", "addr", "add", b + "/24", "dev", "eth0")
    if r.returncode != 0:
        sys.exit(f"bench: cannot add {b} to srv:\n{r.stderr}")
    natlab_cmd = [natlab, "serve", "stun", "--listen", a, "--listen", b, "--port", "3478", "--no-tcp"]
    if server_threads:
        natlab_cmd += ["--threads", server_threads]
    coturn_cmd = ["turnserver", "-n", "-S", "-f", "--no-cli", "--no-tls", "--no-dtls", "--no-tcp",
                  "-L", a, "-L", b, "-p", "3478", "--log-file", "stdout", "--simple-log",
                  "--pidfile", pidfile]
    servers = {"natlab": natlab_cmd, "coturn": coturn_cmd}
    client = [natlab, "exec", lab, "cli", "--", natlab, "bench-client", "stun", "--server", f"{a}:3478",
              "--duration", str(duration), "--threads", threads, "--sockets", sockets, "--window", window]

    def ready():
        # A short burst answered = the server is listening.
        probe = [natlab, "exec", lab, "cli", "--", natlab, "bench-client", "stun", "--server", f"{a}:3478",
                 "--duration", "0.2", "--warmup", "0", "--sockets", "1", "--window", "1"]
        out = run(*probe)
        return out.returncode == 0 and json.loads(out.stdout)["received"] > 0

    def measure(name):
        log = open(f"/tmp/natlab-bench-stun-{name}.log", "w")
        p = subprocess.Popen([natlab, "exec", lab, "srv", "--"] + servers[name], stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        try:
            deadline = time.time() + 10
            while not ready():
                if p.poll() is not None or time.time() > deadline:
                    sys.exit(f"bench: {name} did not start (log /tmp/natlab-bench-stun-{name}.log)")
                time.sleep(0.1)
            out = run(*client)
            if out.returncode != 0:
                sys.exit(f"bench: load generator failed against {name}:\n{out.stderr}")
            return json.loads(out.stdout)
        finally:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            log.close()
            time.sleep(0.3)

    print(f"natlab {natlab}")
    print(f"lab {lab}: server srv {a} + {b}, client cli; {runs} runs of {duration:g} s, medians")
    print(f"load: natlab bench-client stun --threads {threads} --sockets {sockets} --window {window} (closed loop)")
    print(f"natlab: {' '.join(natlab_cmd[1:])}")
    print(f"coturn: {' '.join(coturn_cmd)}")
    print(f"cpus: {os.cpu_count()}\n")
    rates = {"natlab": [], "coturn": []}
    for i in range(runs):
        order = ["natlab", "coturn"] if i % 2 == 0 else ["coturn", "natlab"]
        line = []
        for name in order:
            res = measure(name)
            rates[name].append(res["rate"])
            line.append(f"{name} {res['rate']:>9.0f}/s (sent {res['sent']}, stalls {res['stalls']})")
        print(f"run {i + 1}: " + "   ".join(line), flush=True)
    m = {k: statistics.median(v) for k, v in rates.items()}
    print(f"\nmedian Binding responses/s: natlab {m['natlab']:.0f}   coturn {m['coturn']:.0f}   "
          f"ratio natlab/coturn {m['natlab'] / m['coturn']:.2f}x")
finally:
    subprocess.run([natlab, "down", lab], stdout=subprocess.DEVNULL)
    try:
        os.unlink(pidfile)
    except FileNotFoundError:
        pass
PY
