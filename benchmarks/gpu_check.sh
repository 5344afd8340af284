#!/usr/bin/env bash
# The GPU check, prepared to run once on a machine with a CUDA GPU and no network:
#
#     benchmarks/gpu_check.sh OUT_DIR
#
# It uses the machine's own Python and torch (not the CPU pin; nothing is installed), with the
# project on PYTHONPATH. Parts, each under its own time limit so one hung part cannot eat the
# budget (about 9 minutes in all): the environment (nvidia-smi, versions) -> env.txt; the
# gpu-marked tests -> gpu-tests.log; the GPU benchmark, float32 then float64 -> bench-*.log,
# gpu-float32.json / .png, gpu-float64.json / .png; the sequence models (float32, --quick) if time is
# left -> bench-seq-float32.log, gpu-seq-float32.json. Exit status: 0 when every part that ran
# passed; 1 otherwise. Without CUDA (a CPU machine) the GPU parts are skipped and say so.
set -u
out=${1:?usage: benchmarks/gpu_check.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
py=${PYTHON:-python3}
status=0
started=$(date +%s)

part() {   # part NAME SECONDS LOG COMMAND...: run one part under its limit, record how it ended
    local name=$1 limit=$2 log=$3; shift 3
    local t0=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" > "$out/$log" 2>&1
    local rc=$?
    echo "$name: exit $rc after $(( $(date +%s) - t0 )) s (limit $limit s) -> $log" | tee -a "$out/summary.txt"
    [ "$rc" -eq 0 ] || status=1
}

{
    date -u
    nvidia-smi 2>&1 || echo "nvidia-smi: not available"
    "$py" - <<'PY'
import platform, sys
print("python", sys.version.split()[0], platform.platform())
for name in ("numpy", "torch", "cupy", "lightning", "scipy", "matplotlib", "pytest", "hypothesis", "tqdm", "threadpoolctl"):
    try:
        module = __import__(name)
        print(name, getattr(module, "__version__", "?"))
    except Exception as exc:
        print(name, "missing:", type(exc).__name__, exc)
import torch
print("torch cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
PY
} > "$out/env.txt" 2>&1
: > "$out/summary.txt"

if ! "$py" -c "import torch, cupy, sys; sys.exit(0 if torch.cuda.is_available() and cupy.cuda.runtime.getDeviceCount() else 1)" 2>/dev/null; then
    echo "no CUDA device with torch and CuPy here: the GPU parts are skipped" | tee -a "$out/summary.txt"
    part "gpu tests (expected to skip)" 120 gpu-tests.log "$py" -m pytest -o addopts= -m gpu -q -p no:cacheprovider parity_tests
    exit $status
fi

part "gpu tests" 150 gpu-tests.log "$py" -m pytest -o addopts= -m gpu -q -p no:cacheprovider -rs parity_tests
# the benchmark's --json object is its stdout (-> the .json file); its messages go to the log
part "benchmark float32" 240 bench-float32.log sh -c '"$@" > "$0"' "$out/gpu-float32.json" \
    "$py" -m nnparity.bench --device cuda --dtype float32 --no-progress --json --plot "$out/gpu-float32.png" --force
left=$(( 450 - ($(date +%s) - started) ))
if [ "$left" -gt 60 ]; then
    part "benchmark float64" "$left" bench-float64.log sh -c '"$@" > "$0"' "$out/gpu-float64.json" \
        "$py" -m nnparity.bench --device cuda --dtype float64 --quick --no-progress --json \
        --plot "$out/gpu-float64.png" --force
else
    echo "benchmark float64: skipped, $left s left of the budget" | tee -a "$out/summary.txt"
fi
left=$(( 540 - ($(date +%s) - started) ))
if [ "$left" -gt 60 ]; then
    part "benchmark sequences float32" "$left" bench-seq-float32.log sh -c '"$@" > "$0"' "$out/gpu-seq-float32.json" \
        "$py" -m nnparity.bench --device cuda --dtype float32 --quick --config char_lstm --config tiny_gpt \
        --no-progress --json
else
    echo "benchmark sequences float32: skipped, $left s left of the budget" | tee -a "$out/summary.txt"
fi
echo "total $(( $(date +%s) - started )) s" | tee -a "$out/summary.txt"
exit $status
