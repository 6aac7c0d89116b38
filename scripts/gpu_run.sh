#!/usr/bin/env bash
# The one command to run on a lent GPU machine, from the repository root (its python3 has torch, nothing else):
#
#   scripts/gpu_run.sh                       # full-size check on CUDA; table + JSON under $OUT
#   scripts/gpu_run.sh --device cpu --quick  # the same on a CPU, tiny presets
#
# Carry build/gpu-bundle (python scripts/gpu_bundle.py). Records what is importable, unpacks the missing wheels into
# build/gpu-site (offline, no pip), runs scripts/gpu_check.py so that the whole call ends within 8 minutes
# (GPU_RUN_TIMEOUT_S, default 450; no row starts after GPU_RUN_BUDGET_S, default 360), and writes under $OUT
# (default build/gpu-out): environment.json, gpu_check.json (every row: section, case, status, figures, note) and
# gpu_check.txt (the table). The JSON is rewritten after every row, so a timeout still leaves the rows done.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-build/gpu-out}"
bundle="${GPU_BUNDLE:-build/gpu-bundle}"
site="${GPU_SITE:-build/gpu-site}"
mkdir -p "$out"
python3 scripts/gpu_site.py "$bundle" "$site" > "$out/environment.json"
site_status=$?
if [ "$site_status" -ne 0 ]; then
  echo "gpu_run: the bundle could not be used (see $out/environment.json); rows that need it will be skipped" >&2
fi
PYTHONPATH="$(cd "$site" && pwd):$PWD${PYTHONPATH:+:$PYTHONPATH}" timeout -k 10 "${GPU_RUN_TIMEOUT_S:-450}" \
  python3 scripts/gpu_check.py --budget-s "${GPU_RUN_BUDGET_S:-360}" --json "$out/gpu_check.json" "$@" \
  2>&1 | tee "$out/gpu_check.txt"
status=${PIPESTATUS[0]}
echo "gpu_run: exit status $status; results in $out"
exit "$status"
