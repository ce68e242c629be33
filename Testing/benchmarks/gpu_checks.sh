#!/usr/bin/env bash
# The GPU checks of DiDA, as one short script for a lent GPU machine (issue: GPU speed).
# Its image has torch, timm, safetensors and pytest but not captum: carry captum as a wheel first, here:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: -d .whl captum==0.9.0
# then run (carry .whl):  bash Testing/benchmarks/gpu_checks.sh
# Everything printed is also written under $OUT (when set) so that it comes back.
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-/tmp}"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
# 1. float16 (the CUDA default) within 1 % of float32 on the trained demo model.
python3 -m pytest -q -s -p no:cacheprovider Testing/tests/engine/test_precision.py 2>&1 | tee "$out/precision.txt"
# 1b. The memory-format probe on CUDA (channels-last only where the model runs in it and is faster).
python3 -m pytest -q -s -p no:cacheprovider Testing/tests/engine/test_memory_format.py 2>&1 | tee "$out/memory_format.txt"
# 2. One B-scan (efficiency, captum) and a 128-B-scan volume end to end, default precision (float16).
python3 Testing/benchmarks/bench_engine.py --device cuda --precision auto --volume 128 --json \
  2> >(tee "$out/bench.log" >&2) | tee "$out/bench_auto.json"
# 3. The same with torch.compile (falls back to eager where it cannot build).
python3 Testing/benchmarks/bench_engine.py --device cuda --precision auto --compile --skip-captum --json \
  2> >(tee -a "$out/bench.log" >&2) | tee "$out/bench_compile.json"
