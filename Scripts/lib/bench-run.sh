# shellcheck shell=bash
# Scripts/bench run [RUNS] — end-to-end `natlab run` (build → servers → agents → verdict → teardown):
# median wall time of RUNS runs of Topologies/two-homes.yaml, then the whole shipped set of files
# with checks once. Sourced by Scripts/bench after set-up; $bin is the release natlab.
runs=${1:-7}
python3 - "$bin" "$runs" "$NATLAB_ROOT/Topologies" <<'PY'
import glob, os, statistics, subprocess, sys, time
natlab, runs, topologies = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def timed(files):
    t = time.perf_counter()
    r = subprocess.run([natlab, "run", *files], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"bench: natlab run {' '.join(files)} failed:\n{r.stdout}\n{r.stderr}")
    return (time.perf_counter() - t) * 1000

two = os.path.join(topologies, "two-homes.yaml")
times = [timed([two]) for _ in range(runs)]
print(f"natlab run two-homes.yaml: median {statistics.median(times):.0f} ms over {runs} runs "
      f"(min {min(times):.0f}, max {max(times):.0f})")
shipped = sorted(f for f in glob.glob(os.path.join(topologies, "*.yaml")) if "\nchecks:" in open(f).read())
total = timed(shipped)
print(f"natlab run, every shipped file with checks ({len(shipped)} files): {total / 1000:.1f} s")
PY
