#!/usr/bin/env bash
# The test suite as CI runs it, several times in a row, each in a fresh clone, while another
# process keeps cores busy: the proof that the suite passes every time on a loaded machine.
#
#   bash benchmarks/suite_under_load.sh [RUNS] [BUSY_CORES]     (defaults: 5 runs, 1 core)
#
# Prints one line per run (exit status, minutes, pytest's summary) and ends non-zero if any run
# failed. Each run's full log is kept in $WORK (default /tmp/suite-under-load).
set -uo pipefail
RUNS=${1:-5}
CORES=${2:-1}
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/suite-under-load}
mkdir -p "$WORK"
failed=0
for run in $(seq 1 "$RUNS"); do
    clone="$WORK/clone-$run"
    rm -rf "$clone"
    git clone --quiet "$REPO" "$clone"
    started=$(date +%s)
    python3 "$REPO/benchmarks/cpu_load.py" --cores "$CORES" -- bash "$clone/.ci/run" > "$WORK/run-$run.log" 2>&1
    status=$?
    minutes=$(awk "BEGIN { printf \"%.1f\", ($(date +%s) - $started) / 60 }")
    summary=$(grep -E "^[0-9]+ (passed|failed)|[0-9]+ passed" "$WORK/run-$run.log" | tail -1)
    echo "run $run/$RUNS: exit $status, $minutes min, $summary (log: $WORK/run-$run.log)"
    [ "$status" -eq 0 ] || failed=1
    rm -rf "$clone/.venv"  # several GB each; the log is what is kept
done
exit $failed
