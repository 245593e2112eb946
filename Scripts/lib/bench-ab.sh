# shellcheck shell=bash
# Scripts/bench ab OLD NEW [RUNS] [FILE] — sourced by Scripts/bench after set-up.
#
# Is a change to natlab faster? Build the old binary and the new one (copy each out of .build/release
# first), then alternate them RUNS times (default 21) on FILE (default Topologies/two-homes.yaml):
# `up --json`, then `down`, SETTLE seconds (default 0.5) before each command, as Scripts/bench setup
# does. Alternating is the point: this machine's speed drifts by half within the hour, so figures
# from two separate runs do not compare. Prints the median, quartiles and minimum of each binary's
# `up` wall time and kernel-build time, and the difference of the medians. Add `--no-roles` through
# UP_ARGS="--no-roles" to compare the network build alone (less noise: no role start-up).
#
# Each round runs both binaries, the old one first in even rounds and the new one first in odd ones:
# whichever runs second in a pair is measurably favoured (up to ~0.8 ms on two-homes), so a fixed
# order makes a change look better or worse depending on the side it is passed on. The verdict is
# the median of the per-round differences with a 95 % bootstrap interval: an interval that contains
# 0 means the runs cannot tell the two binaries apart.
old=${1:?usage: Scripts/bench ab OLD-BINARY NEW-BINARY [RUNS] [FILE]}
new=${2:?usage: Scripts/bench ab OLD-BINARY NEW-BINARY [RUNS] [FILE]}
runs=${3:-21}
file=${4:-$NATLAB_ROOT/Topologies/two-homes.yaml}
natlab_keep_in_large_pages "$old" "$new"   # the same page-cache state for both (see setup.sh)
python3 - "$old" "$new" "$runs" "$file" <<'PY'
import json, os, random, statistics, subprocess, sys, time

old, new, runs, topology = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
settle = float(os.environ.get("SETTLE", "0.5"))
extra = os.environ.get("UP_ARGS", "").split()

def run(cmd):
    time.sleep(settle)
    start = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"bench ab: {' '.join(cmd)} failed:\n{r.stderr}")
    return (time.perf_counter() - start) * 1000, r.stdout

subprocess.run([new, "gc"], stdout=subprocess.DEVNULL)
wall = {old: [], new: []}
kernel = {old: [], new: []}
for round in range(runs):
    for binary in ((old, new) if round % 2 == 0 else (new, old)):
        ms, out = run([binary, "up", topology, "--name", "bench-ab", "--json"] + extra)
        wall[binary].append(ms)
        kernel[binary].append(json.loads(out)["buildMilliseconds"])
        run([binary, "down", "bench-ab"])
label = " ".join([os.path.basename(topology)] + extra)
print(f"{label}: {runs} alternating runs, settle {settle} s (ms)\n")
print(f"{'binary':<40} {'median':>7} {'q1':>7} {'q3':>7} {'min':>7} {'kernel':>7}")
for label, binary in (("old " + old, old), ("new " + new, new)):
    q1, _, q3 = statistics.quantiles(wall[binary], n=4)
    print(f"{label[-40:]:<40} {statistics.median(wall[binary]):7.2f} {q1:7.2f} {q3:7.2f} {min(wall[binary]):7.2f}"
          f" {statistics.median(kernel[binary]):7.2f}")
print(f"\nnew - old (medians): {statistics.median(wall[new]) - statistics.median(wall[old]):+.2f} ms")
diffs = [n - o for n, o in zip(wall[new], wall[old])]
rng = random.Random(4787)
boot = sorted(statistics.median(rng.choices(diffs, k=len(diffs))) for _ in range(2000))
faster = sum(d < 0 for d in diffs)
print(f"new - old (median of the {runs} per-round differences): {statistics.median(diffs):+.2f} ms,"
      f" 95 % interval {boot[50]:+.2f} to {boot[1949]:+.2f} ms; new faster in {faster} of {runs} rounds")
PY
