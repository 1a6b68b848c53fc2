#!/usr/bin/env bash
# One short check on a lent GPU machine: does mmvae work there, and how fast is it?
#
#   PYTHONPATH=. bash benchmarks/gpu_check.sh                  # on the GPU machine, from the repo root
#   PYTHONPATH=. bash benchmarks/gpu_check.sh --device cpu --quick   # smoke run of this script on a CPU
#
# 1. the device tests (tests/test_device.py: known answers, every fusion x estimator, training,
#    checkpoints, with MMVAE_TEST_DEVICE set to the device) and the core tests (on the CPU: they
#    check that this torch/python build runs the package), no lasio / streamlit / browser tests;
# 2. the command line on the device: train a MoE model for 2 epochs, evaluate it (bounds, log p(x), overlap);
# 3. benchmarks/gpu_check.py: samples/s at K = 1, 10, 100 for each fusion beside the floor, the
#    K = 1000 log p(x) time, peak device memory.
# Needs only torch, numpy, safetensors, scikit-learn, pytest, hypothesis, tqdm. About 4 minutes on
# an H100 (each part is cut off by `timeout`). Writes env.txt, pytest.txt, cli.txt, gpu_check.txt and gpu_check.md to
# $OUT if set. Exit status 0 when every part passed.
set -uo pipefail
device=cuda
quick=()
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --quick) quick=(--quick); shift ;;
    *) echo "gpu_check.sh: unknown option $1 (use --device cuda|cpu, --quick)" >&2; exit 2 ;;
  esac
done
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
py=$(command -v python3 || command -v python)
out="${OUT:-}"
log() { if [ -n "$out" ]; then tee -a "$out/$1"; else cat; fi; }
[ -n "$out" ] && mkdir -p "$out"

"$py" - <<'PY' 2>&1 | log env.txt
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "available", torch.cuda.is_available())
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"GPU {i}: {p.name}, {p.total_memory / 2**30:.1f} GiB")
PY

tests=(tests/test_device.py)
[ ${#quick[@]} -eq 0 ] && tests+=(tests/test_core_*.py tests/test_diagnostics_likelihood.py)
echo "== tests on $device: ${tests[*]}" | log pytest.txt
MMVAE_TEST_DEVICE="$device" timeout 150 "$py" -m pytest -p no:cacheprovider -rfE "${tests[@]}" 2>&1 | tail -n 40 | log pytest.txt
rc_tests=${PIPESTATUS[0]}

echo "== command line on $device: train (moe, DReG, K=10, 2 epochs) and evaluate" | log cli.txt
tmp=$(mktemp -d)
{ timeout 90 "$py" -m mmvae train --data digits-halves --fusion moe --estimator dreg --K 10 --epochs 2 \
    --device "$device" --quiet --out "$tmp/moe.safetensors" \
  && timeout 90 "$py" -m mmvae evaluate "$tmp/moe.safetensors" --device "$device" --K 1,10,100 \
    --parts bounds,loglik,overlap --n-samples 1000; } 2>&1 | log cli.txt
rc_cli=${PIPESTATUS[0]}
rm -rf "$tmp"

echo "== throughput on $device" | log gpu_check.txt
timeout 150 "$py" benchmarks/gpu_check.py --device "$device" "${quick[@]}" 2>&1 | log gpu_check.txt
rc_bench=${PIPESTATUS[0]}

echo "== exit status: tests $rc_tests, command line $rc_cli, benchmark $rc_bench (0 = ok)"
[ "$rc_tests" -eq 0 ] && [ "$rc_cli" -eq 0 ] && [ "$rc_bench" -eq 0 ]
