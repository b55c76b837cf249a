#!/usr/bin/env bash
# Benchmark (not a test): the article's GPU claim, measured. Runs device=cpu,gpu cells with the JAX
# backend (jit_compile=true) on a machine with an NVIDIA GPU and a CUDA build of JAX, without network:
#   1. experiment=seed_grid: the article's grid (small CNN on digits: steps of a few ms, where a GPU's
#      launch overhead may dominate);
#   2. a larger workload: MobileNetV2 (width 0.35, random init) on digits resized to 96x96, batch 128, where a step is
#      real work.
# Each sweep writes its report under $OUT/reports/; the device verdict gives the GPU/CPU ratio with its CI,
# and every GPU result records the GPU, its memory and driver, and the devices JAX itself saw.
#
#   benchmarks/gpu_claim.sh                 # with the harness installed in this environment
#   WHEELS=wheels benchmarks/gpu_claim.sh   # offline: install the harness from local wheels first
#
# Preparing the wheels, on a machine with network (the GPU machine needs JAX with CUDA, NumPy, pandas,
# seaborn, scikit-learn and matplotlib of its own; the venv below sees them):
#   pip wheel --no-deps -w wheels .
#   pip download -d wheels --no-deps keras hydra-core omegaconf 'antlr4-python3-runtime==4.9.3' PyYAML \
#       absl-py namex optree ml-dtypes h5py rich markdown-it-py mdurl pygments packaging
# (Comet is optional: without comet_ml the runs use tracking=disabled.)
#
# On a machine without a GPU the GPU cells are recorded skipped and the CPU cells still run: that is how
# this script is checked here. EPOCHS (default 10) and SEEDS (default 0,1) size the sweeps.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$PWD/gpu_claim}
epochs=${EPOCHS:-10}
seeds=${SEEDS:-0,1}
mkdir -p "$out"
python=${PYTHON:-python3}
if [ -n "${WHEELS:-}" ]; then
  "$python" -m venv --system-site-packages "$out/venv"  # keeps the machine's own JAX with CUDA
  "$out/venv/bin/pip" install -q --no-index --no-deps --find-links "$WHEELS" "$WHEELS"/*.whl
  python="$out/venv/bin/python"
fi
tracking=offline
"$python" -c "import comet_ml" 2>/dev/null || tracking=disabled
"$python" -c "import jax; print('jax', jax.__version__, 'devices:', jax.devices())" || {
  echo "gpu_claim: JAX is not importable here (pip install -e '.[jax]', or 'jax[cuda12]' on a GPU machine)" >&2
  exit 2
}
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
cd "$out"
common=(backend=jax jit_compile=true "tracking=$tracking" "seed=$seeds" "epochs=$epochs" results_dir="$out/results")
"$python" -m harness -m experiment=seed_grid "${common[@]}" sweep_name=gpu_claim_seed_grid || true
"$python" -m harness -m device=cpu,gpu model=mobilenet_v2 model.alpha=0.35 model.image_size=96 batch_size=128 "${common[@]}" \
  sweep_name=gpu_claim_mobilenet_v2 || true
for sweep in gpu_claim_seed_grid gpu_claim_mobilenet_v2; do
  echo "== $sweep"
  grep -h "GPU vs CPU" "reports/$sweep/report.md" || echo "no report for $sweep"
done
echo "reports: $out/reports (from $here)"
