#!/usr/bin/env bash
# Benchmark (not a test): the article's GPU claim, measured. Runs device=cpu,gpu cells with the JAX
# backend (jit_compile=true) on a machine with an NVIDIA GPU and a CUDA build of JAX, without network:
#   1. a larger workload: MobileNetV2 (width 0.35, random init) on digits resized to 96x96, batch 128, where a step is
#      real work;
#   2. experiment=seed_grid: the article's grid (small CNN on digits: steps of a few ms, where a GPU's
#      launch overhead may dominate).
# Each sweep writes its report under $OUT/reports/; the device verdict gives the GPU/CPU ratio with its CI,
# and every GPU result records the GPU, its memory and driver, and the devices JAX itself saw. Where NVML
# is importable (nvidia-ml-py), benchmarks/gpu_monitor.py samples the GPU in a process of its own beside
# the sweep (never inside a run) and prints, per GPU run, mean utilisation, peak memory in use and energy.
# JAX's preallocation is off (XLA_PYTHON_CLIENT_PREALLOCATE=false, unless set) so that memory in use is
# what a run needs.
#
#   benchmarks/gpu_claim.sh                 # with the harness installed in this environment
#   WHEELS=wheels benchmarks/gpu_claim.sh   # offline: the harness and its missing packages from local wheels
#
# Preparing the wheels, on a machine with network (the GPU machine needs JAX with CUDA, NumPy, pandas,
# seaborn, scikit-learn, SciPy and matplotlib of its own; set --python-version to its Python):
#   pip wheel --no-deps -w wheels .
#   pip download -d wheels --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
#       keras hydra-core 'omegaconf<2.4' namex optree        # and: pip wheel --no-deps -w wheels 'antlr4-python3-runtime==4.9.3'
# They are installed with pip --target into $OUT/site, put first on PYTHONPATH: a virtual environment made
# from an interpreter that is itself a virtual environment's would not see that one's CUDA JAX.
# (Comet is optional: without comet_ml the runs use tracking=disabled.)
#
# On a machine without a GPU the GPU cells are recorded skipped and the CPU cells still run: that is how
# this script is checked here. EPOCHS (default 10) sizes both sweeps; SEEDS (default 0,1,2) the larger
# workload's and GRID_SEEDS (default 0) the article's grid's (48 cells a seed).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$PWD/gpu_claim}
epochs=${EPOCHS:-10}
seeds=${SEEDS:-0,1,2}
grid_seeds=${GRID_SEEDS:-0}
mkdir -p "$out"
python=${PYTHON:-python3}
if [ -n "${WHEELS:-}" ]; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --target "$out/site" "$WHEELS"/*.whl
  export PYTHONPATH="$out/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export XLA_PYTHON_CLIENT_PREALLOCATE=${XLA_PYTHON_CLIENT_PREALLOCATE:-false}
tracking=offline
"$python" -c "import comet_ml" 2>/dev/null || tracking=disabled
"$python" -c "import jax; print('jax', jax.__version__, 'devices:', jax.devices())" || {
  echo "gpu_claim: JAX is not importable here (pip install -e '.[jax]', or 'jax[cuda12]' on a GPU machine)" >&2
  exit 2
}
monitor=
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  if "$python" -c "import pynvml" 2>/dev/null; then
    "$python" "$here/benchmarks/gpu_monitor.py" sample "$out/gpu_samples.csv" &
    monitor=$!
    trap 'kill $monitor 2>/dev/null || true' EXIT
  fi
fi
cd "$out"
common=(backend=jax jit_compile=true "tracking=$tracking" "epochs=$epochs" results_dir="$out/results")
"$python" -m harness -m device=cpu,gpu model=mobilenet_v2 model.alpha=0.35 model.image_size=96 batch_size=128 \
  "seed=$seeds" "${common[@]}" sweep_name=gpu_claim_mobilenet_v2 || true
"$python" -m harness -m experiment=seed_grid "seed=$grid_seeds" "${common[@]}" sweep_name=gpu_claim_seed_grid || true
for sweep in gpu_claim_mobilenet_v2 gpu_claim_seed_grid; do
  echo "== $sweep"
  grep -h "GPU vs CPU" "reports/$sweep/report.md" || echo "no report for $sweep"
done
if [ -n "$monitor" ]; then
  kill "$monitor" && wait "$monitor" || true
  echo "== the GPU per GPU run (benchmarks/gpu_monitor.py)"
  "$python" "$here/benchmarks/gpu_monitor.py" summary "$out/gpu_samples.csv" multirun/gpu_claim_mobilenet_v2 \
    multirun/gpu_claim_seed_grid || true
fi
echo "reports: $out/reports (from $here)"
