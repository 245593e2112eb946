# shellcheck shell=bash
# Scripts/bench turn [RUNS] — sourced by Scripts/bench after set-up; $bin is the release natlab.
#
# natlab's TURN relay and coturn's turnserver side by side in one lab (same machine, same moment,
# alternating), driven by the same load generators from a `load` host on the lab's internet:
#   relayed packets/s: PROCS turnutils_uclient processes (coturn 4.6.1's own load client), each with
#     CLIENTS channel sessions (-c: no RTCP allocation) sending MSGS messages of SIZE bytes every
#     INTERVAL ms to turnutils_peer (echo) on `peer`. Counted at the receiving side (uclient's
#     tot_recv_msgs, its slope while messages flow); each echoed message crosses the relay twice
#     (client -> peer and back), so relayed datagrams/s = 2 x echoed messages/s.
#   allocations/s: `natlab bench-client turn-alloc` (compiled, one thread, epoll; coturn 4.6.1 has no
#     allocation load mode), SOCKETS clients at once for SECONDS, each cycle one new client on a new
#     source port doing what a real client does: Allocate (401), Allocate with long-term credentials,
#     Refresh LIFETIME=0. (Until 2026-11-29 the sockets were reused, and coturn answered each reused
#     5-tuple's Allocate with 437: its "allocations" were mostly error answers. See the generator.)
# Both relays run their default threads: one per core (coturn's relay threads, natlab's shards).
# On a 2-core machine everything shares the two cores, so a relay's figure also depends on the CPU it
# gets beside the generators. (Until 2026-11-29 the allocation generator was a Python script that used
# a whole core with either server, which bounded both figures and pulled the ratio towards 1; the
# compiled one leaves the relays more CPU.)
# Beside the rates, each relay's own CPU (utime + stime from /proc/PID/stat, kernel work in its
# threads included) per relayed datagram and per allocation: the rates depend on the CPU the load
# processes leave a relay, the CPU per unit of work does much less.
# Medians of RUNS (default 5) runs; ratio natlab/coturn (> 1: natlab faster; CPU < 1: natlab cheaper).
# Numbers, not assertions.
runs=${1:-5}
command -v turnserver >/dev/null && command -v turnutils_uclient >/dev/null || natlab_install_packages "${NATLAB_TEST_PACKAGES[@]}"
natlab_quiet_coturn
python3 - "$bin" "$runs" "$NATLAB_ROOT" <<'PY'
import json, os, re, statistics, subprocess, sys, tempfile, time

natlab, runs, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]
env = lambda k, d: int(os.environ.get(k, d))
PROCS, CLIENTS, MSGS, SIZE, INTERVAL = env("PROCS", 8), env("CLIENTS", 20), env("MSGS", 2000), env("SIZE", 120), env("INTERVAL", 1)
SECONDS, SOCKETS = env("SECONDS", 5), env("SOCKETS", 32)
lab = "bench-turn"
topology = """name: bench-turn
hosts:
  relay:  { attach: internet, run: { turn-server: { users: { alice: secret } } } }
  coturn: { attach: internet, run: { coturn: { users: { alice: secret } } } }
  peer:   { attach: internet }
  load:   { attach: internet }
"""
servers = {"natlab": "203.0.113.1", "coturn": "203.0.113.2"}
PEER = "203.0.113.3"

def sh(*cmd, **kw):
    return subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)

def in_load(*cmd):
    return [natlab, "exec", lab, "load", "--"] + list(cmd)

def relay_run(server):
    cmd = in_load("turnutils_uclient", "-c", "-u", "alice", "-w", "secret", "-e", PEER, "-r", "3480",
                  "-m", str(CLIENTS), "-n", str(MSGS), "-l", str(SIZE), "-z", str(INTERVAL), server)
    t = time.perf_counter()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(PROCS)]
    outs = [p.communicate()[0] for p in procs]
    wall = time.perf_counter() - t
    # uclient prints running totals once a second ("T: : start_mclient: msz=…, tot_recv_msgs=R, …"). The
    # rate is the slope of R between its first and last increase, summed over the processes: wall time
    # would also count uclient's allocations and its wait for lost messages at the end.
    rate = recv = sent = 0
    for o in outs:
        m = re.findall(r"start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$", o, re.M)
        samples = [(int(t), int(r)) for t, r in re.findall(r"^(\d+): : start_mclient: msz=\d+, tot_send_msgs=\d+, tot_recv_msgs=(\d+)", o, re.M)]
        if not m or not samples:
            # uclient gives up on an error (seen: coturn's 437 "wrong transaction ID" to a retransmitted
            # Allocate under load): the run counts as failed for that server, with its last words.
            sys.stderr.write(f"bench: uclient against {server} failed: " + " | ".join(o.strip().splitlines()[-2:]) + "\n")
            return None, None, 0
        sent += int(m[-1][0]); recv += int(m[-1][1])
        rising = [(t, r) for i, (t, r) in enumerate(samples) if i == 0 or r != samples[i - 1][1]]
        first = next(((t, r) for t, r in samples if r > 0), None)
        last = rising[-1]
        if first and last[0] > first[0]:
            rate += (last[1] - first[1]) / (last[0] - first[0])
        else:
            rate += int(m[-1][1]) / wall
    return rate, (sent - recv) / max(sent, 1) * 100, recv

def cpu_seconds(pid):
    # utime + stime of the relay process (all its threads), fields 14 and 15 of /proc/PID/stat.
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def alloc_run(server):
    r = sh(*in_load(natlab, "bench-client", "turn-alloc", "--server", f"{server}:3478", "--user", "alice",
                    "--password", "secret", "--duration", str(SECONDS), "--sockets", str(SOCKETS)))
    if r.returncode != 0:
        sys.exit("bench: allocation load failed:\n" + r.stdout + r.stderr)
    return json.loads(r.stdout)

sh(natlab, "down", lab)
with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
    f.write(topology)
up = sh(natlab, "up", f.name, "--name", lab)
os.unlink(f.name)
if up.returncode != 0:
    sys.exit("bench: up failed:\n" + up.stderr)
peer = subprocess.Popen([natlab, "exec", lab, "peer", "--", "turnutils_peer", "-L", PEER, "-p", "3480"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    time.sleep(1)
    pps = {k: [] for k in servers}; loss = {k: [] for k in servers}; allocs = {k: [] for k in servers}
    # The relays' own CPU per relayed datagram and per allocation (kernel time in their threads
    # included): less noisy than the rates, which depend on the CPU the load processes leave them.
    cpu_dgram = {k: [] for k in servers}; cpu_alloc = {k: [] for k in servers}
    roles = json.loads(sh(natlab, "status", lab, "--json").stdout)["roles"]
    pids = {"natlab": next(r["pid"] for r in roles if r["node"] == "relay"),
            "coturn": next(r["pid"] for r in roles if r["node"] == "coturn")}
    failed = {k: 0 for k in servers}
    print(f"natlab {natlab} (relay threads = CPUs: {os.cpu_count()}); coturn: {sh('dpkg-query', '-W', '-f=${Version}', 'coturn').stdout} (turnserver, default threads = CPUs: {os.cpu_count()})")
    print(f"relay load: {PROCS} x turnutils_uclient -c -m {CLIENTS} -n {MSGS} -l {SIZE} -z {INTERVAL} (channels, echo peer); "
          f"allocations: {SOCKETS} clients at once x {SECONDS} s, each cycle a new client: Allocate (401), Allocate with credentials, Refresh(0); {runs} runs, medians\n")
    for i in range(runs):
        order = list(servers) if i % 2 == 0 else list(reversed(servers))
        for name in order:
            c0 = cpu_seconds(pids[name])
            r, l, echoed = relay_run(servers[name])
            c1 = cpu_seconds(pids[name])
            if r is None:
                failed[name] += 1
            else:
                pps[name].append(2 * r); loss[name].append(l)
                cpu_dgram[name].append((c1 - c0) * 1e6 / max(1, 2 * echoed))
            a = alloc_run(servers[name])
            c2 = cpu_seconds(pids[name])
            allocs[name].append(a["per_second"])
            cpu_alloc[name].append((c2 - c1) * 1e6 / max(1, a["allocations"]))
        print(f"run {i + 1}: " + "  ".join(f"{n}: " + (f"{pps[n][-1]:,.0f} relayed/s ({loss[n][-1]:.2f}% lost, {cpu_dgram[n][-1]:.1f} us CPU each)" if pps[n] else "failed")
                                            + f", {allocs[n][-1]:,.0f} alloc/s ({cpu_alloc[n][-1]:.0f} us CPU each)" for n in servers), flush=True)
    m = lambda v: statistics.median(v) if v else float("nan")
    print(f"\n{'':<10} {'relayed datagrams/s':>20} {'loss %':>8} {'us CPU/datagram':>16} {'allocations/s':>14} {'us CPU/allocation':>18} {'failed relay runs':>18}")
    for n in servers:
        print(f"{n:<10} {m(pps[n]):>20,.0f} {m(loss[n]):>8.2f} {m(cpu_dgram[n]):>16.2f} {m(allocs[n]):>14,.0f} {m(cpu_alloc[n]):>18.1f} {failed[n]:>18}")
    print(f"{'ratio':<10} {m(pps['natlab']) / m(pps['coturn']):>19.2f}x {'':>8} {m(cpu_dgram['natlab']) / m(cpu_dgram['coturn']):>15.2f}x "
          f"{m(allocs['natlab']) / m(allocs['coturn']):>13.2f}x {m(cpu_alloc['natlab']) / m(cpu_alloc['coturn']):>17.2f}x   (natlab / coturn; CPU: < 1 is natlab cheaper)")
finally:
    peer.terminate()
    sh(natlab, "down", lab)
PY
