#!/usr/bin/env bash
# Every GPU check of er-art, in one go (issue 8):
#   1. install: wheels from .whl/ when present (ART, multiprocess, dill, kornia, kornia_rs for a
#      machine without them), then er-art itself (`pip install --no-deps -e .`);
#   2. `pytest -m gpu` (tests/test_gpu.py: fit / PGD / amp / checkpoints on CUDA, no host sync in a
#      training step, train + SIGKILL + resume with --deterministic compared bit for bit, the
#      default evaluate ensemble and each defence on CUDA, the AMP critic against fp32, a CUDA
#      pickle unpickled with CUDA_VISIBLE_DEVICES="");
#   3. benchmarks/bench_gpu.py: seconds per MNIST er-pgd epoch (fp32, --amp, --compile) and the
#      10,000-image PGD-40 sweep (MNIST from $ER_ART_GPU_DATA, default .gpu-data/MNIST/raw, when
#      there; random images of MNIST's shape otherwise);
#   4. benchmarks/bench_eval_attacks.py on CUDA: ART's PGD, APGD and Square against er-art's
#      (evaluation path; overhead over a bare PyTorch loop) on a default digits run trained there.
# Logs and results go to $OUT when it is set (the device tool), else to runs/gpu-checks/.
#
#   benchmarks/gpu_checks.sh                 # everything
#   benchmarks/gpu_checks.sh --skip-bench    # install + tests only (or --skip-tests)
#   benchmarks/gpu_checks.sh --dry-run       # on a machine without CUDA: the CPU-runnable parts
#                                            # (gpu tests collected and skipped, bench --smoke)
# Exit status: 0 when every step passed, else the number of failed steps.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY_RUN=0
TESTS=1
BENCH=1
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    --skip-tests) TESTS=0 ;;
    --skip-bench) BENCH=0 ;;
    *) echo "error: unknown option $arg; accepted: --dry-run, --skip-tests, --skip-bench" >&2
       exit 2 ;;
  esac
done
LOGS="${OUT:-runs/gpu-checks}"
mkdir -p "$LOGS"
export PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
FAILED=0

step() {  # step NAME COMMAND...: run, append to $LOGS/<NAME up to its first '-'>.log, count a failure
  local name="$1"
  shift
  echo "=== $name: $*" | tee -a "$LOGS/summary.txt"
  local start=$SECONDS
  "$@" 2>&1 | tee -a "$LOGS/${name%%-*}.log"
  local rc=${PIPESTATUS[0]}
  echo "=== $name: exit $rc after $((SECONDS - start)) s" | tee -a "$LOGS/summary.txt"
  [[ $rc -eq 0 ]] || FAILED=$((FAILED + 1))
  return "$rc"
}

# 1. install --------------------------------------------------------------------------------
if [[ $DRY_RUN -eq 0 ]]; then
  if compgen -G ".whl/*.whl" >/dev/null; then
    step install-wheels "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
  fi
  # no index there: build with the machine's own setuptools
  step install-er-art "$PY" -m pip install -q --no-deps --no-build-isolation --no-index -e . \
    || exit 1
fi
step environment "$PY" - <<'EOF'
import art, torch, er_art
print("python", __import__("platform").python_version(), "torch", torch.__version__,
      "ART", art.__version__, "er-art", er_art.__version__)
print("CUDA available:", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
for name in ("kornia", "multiprocess", "dill"):
    try:
        print(name, __import__(name).__version__)
    except ImportError as err:
        print(name, "MISSING:", err)
EOF

# 2. the gpu tests --------------------------------------------------------------------------
[[ $TESTS -eq 1 ]] && step pytest "$PY" -m pytest -m gpu -v -rA -p no:cacheprovider --junitxml="$LOGS/pytest.xml" tests/

# 3. the benchmark --------------------------------------------------------------------------
DATA="${ER_ART_GPU_DATA:-.gpu-data}"
if [[ $BENCH -eq 0 ]]; then
  :
elif [[ $DRY_RUN -eq 1 ]]; then
  step bench "$PY" benchmarks/bench_gpu.py --smoke --out "$LOGS/bench_gpu.json"
elif [[ -d "$DATA/MNIST/raw" ]]; then
  step bench "$PY" benchmarks/bench_gpu.py --data-dir "$DATA" --out "$LOGS/bench_gpu.json"
else
  step bench "$PY" benchmarks/bench_gpu.py --out "$LOGS/bench_gpu.json"
fi

# 4. the attacks inside evaluation on the GPU: ART against er-art (a digits run trained there) --
if [[ $BENCH -eq 1 && $DRY_RUN -eq 0 ]]; then
  step bench_attacks-train "$PY" -m er_art.cli.app train --device cuda --out "$LOGS/digits-run" \
    && step bench_attacks "$PY" benchmarks/bench_eval_attacks.py --run "$LOGS/digits-run" \
      --device cuda --eps 0.1,0.2,0.3 --repeats 2 --json "$LOGS/bench_eval_attacks.json"
fi

echo "=== gpu checks: $FAILED step(s) failed; logs in $LOGS" | tee -a "$LOGS/summary.txt"
exit "$FAILED"
