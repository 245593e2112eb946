# shellcheck shell=bash
# Scripts/bench setup [RUNS] [TOPOLOGY…] — sourced by Scripts/bench after set-up; $bin is the release
# natlab. TOPOLOGY: two-homes, cgnat or a path to a topology file (default: two-homes and cgnat), so
# that a long set can be spent on the one topology whose ratio is in question.
#
# For each topology, RUNS rounds (default 15), alternating natlab and the script so that both see
# the same machine state. Reports medians of wall time per command (process start included), the
# kernel-build time natlab reports itself, and the ratio. Numbers, not assertions.
#
# Two natlab columns: `natlab up` as users run it, which also starts the topology's roles (two natlab
# processes in two-homes) whose start-up shares the two cores with the end of `up`; and
# `natlab up --no-roles`, the same work as the script (network only), which is the like-for-like ratio.
#
# The kernel destroys a deleted namespace asynchronously, holding the rtnl lock while it does; a
# build that starts right after a teardown waits for it. SETTLE (seconds, default 0.5) pauses
# between commands so each one is measured on a quiet kernel, as in real use; SETTLE=0 measures
# back-to-back cycles instead.
#
# The script's time is mostly process starts (one per command), whose cost drifts with the machine
# more than natlab's kernel work does, and the ratio with it. So each topology's line also gives the
# script's number of commands and the median start of `ip -V` (100 spawns around the rounds): a set
# with a slower ratio and a faster `ip -V` is the machine, not natlab.
#
# Next to the like-for-like ratio, its 95 % bootstrap interval: the rounds resampled (each round ran
# both sides), the ratio of medians recomputed 2,000 times. A ratio whose interval straddles a target
# has not shown it either way; more rounds narrow the interval, not the ratio's drift with the machine.
runs=${1:-15}
case $runs in
    ''|*[!0-9]*|0) echo "usage: Scripts/bench setup [RUNS] [TOPOLOGY…]; RUNS is a number of rounds, not '$runs'" >&2; exit 2 ;;
esac
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- two-homes cgnat
topologies=()
for t in "$@"; do
    case $t in
        */*|*.yaml|*.yml) f=$t ;;
        *) f=$NATLAB_ROOT/Topologies/$t.yaml ;;
    esac
    [ -f "$f" ] || { echo "bench setup: no topology file $f" >&2; exit 2; }
    topologies+=("$f")
done
python3 - "$bin" "$runs" "${topologies[@]}" <<'PY'
import json, os, random, statistics, subprocess, sys, tempfile, time

natlab, runs, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
settle = float(os.environ.get("SETTLE", "0.5"))

def timed(cmd):
    time.sleep(settle)
    t = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    elapsed = (time.perf_counter() - t) * 1000
    if r.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed:\n{r.stderr}")
    return elapsed, r.stdout

def spawns(n=50):
    """n starts of `ip -V`, the script's most common program, in ms: the machine's process-start cost."""
    out = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(["ip", "-V"], stdout=subprocess.DEVNULL)
        out.append((time.perf_counter() - t) * 1000)
    return out

def interval(num, den):
    """95 % bootstrap interval of median(num) / median(den); num[i] and den[i] come from round i."""
    rng, m, rounds = random.Random(4787), statistics.median, list(zip(num, den))
    ratios = sorted(m(n for n, _ in pick) / m(d for _, d in pick)
                    for pick in (rng.choices(rounds, k=len(rounds)) for _ in range(2000)))
    return ratios[50], ratios[1949]

subprocess.run([natlab, "gc"], stdout=subprocess.DEVNULL)
print(f"natlab {natlab}\nruns per topology: {runs} (medians; wall time includes process start; settle {settle} s)\n")
print(f"{'topology':<16} {'natlab up':>10} {'(kernel)':>9} {'--no-roles':>11} {'shell up':>10} {'ratio':>7} {'like-for-like':>14} {'(95 %)':>11}"
      f"   {'natlab down':>11} {'shell down':>10} {'ratio':>7}   {'script':>12} {'ip -V':>7}")
for f in files:
    name = os.path.basename(f).removesuffix(".yaml")
    lab_nl, lab_sh = "bench-nl", "bench-sh"
    script = subprocess.run([natlab, "up", "--emit-shell", f, "--name", lab_sh],
                            check=True, stdout=subprocess.PIPE, text=True).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as t:
        t.write(script)
        path = t.name
    # Commands `up` runs, one process each: its body's lines that start with `ip` (`ip netns exec`
    # runs sysctl, nft and conntrack in its own place); the rulesets are here-documents.
    body = script.split("\nup() {\n", 1)[-1].split("\ndown() {\n", 1)[0].splitlines()
    commands = sum(1 for line in body if line.startswith("  ip "))
    ip_start = spawns()
    nl_up, nl_kernel, nl_bare, nl_down, sh_up, sh_down = [], [], [], [], [], []
    for _ in range(runs):
        ms, out = timed([natlab, "up", f, "--name", lab_nl, "--json"])
        nl_up.append(ms); nl_kernel.append(json.loads(out)["buildMilliseconds"])
        nl_down.append(timed([natlab, "down", lab_nl])[0])
        nl_bare.append(timed([natlab, "up", f, "--name", lab_nl, "--json", "--no-roles"])[0])
        timed([natlab, "down", lab_nl])
        sh_up.append(timed(["bash", path, "up"])[0])
        sh_down.append(timed(["bash", path, "down"])[0])
    os.unlink(path)
    ip_start += spawns()
    m = statistics.median
    lo, hi = interval(sh_up, nl_bare)
    print(f"{name:<16} {m(nl_up):>8.1f}ms {m(nl_kernel):>7.1f}ms {m(nl_bare):>9.1f}ms {m(sh_up):>8.1f}ms"
          f" {m(sh_up)/m(nl_up):>6.1f}x {m(sh_up)/m(nl_bare):>13.1f}x {f'{lo:.1f}-{hi:.1f}x':>11}"
          f"   {m(nl_down):>9.1f}ms {m(sh_down):>8.1f}ms {m(sh_down)/m(nl_down):>6.1f}x"
          f"   {commands:>3} commands {m(ip_start):>5.2f}ms")
PY
