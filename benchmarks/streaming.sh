#!/usr/bin/env bash
# Benchmark (not a test): what streaming a folder from disk costs against holding it in memory.
# Generates a folder of PNGs (3 classes, IMAGES per class, 64x64), then runs one sweep of
# dataset.load=memory,stream over SEEDS, in the harness' shuffled order (each seed's two cells run as
# a block, so memory and stream alternate and drift falls on both). The report's dataset.load section
# gives the stream/memory ratio of training seconds with its CI; the decoded copy is made by the first
# run and read by all the others (data_cache_hit), so decoding is in none of the timed epochs.
#
#   benchmarks/streaming.sh            # IMAGES=300 SEEDS=0,1,2,3,4,5 EPOCHS=5 MODEL=small_cnn
# (6 seeds: the fewest pairs for which the report states a 95 % interval rather than "too few to tell")
#   MODEL=mobilenet_v2 benchmarks/streaming.sh
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$PWD/streaming}
images=${IMAGES:-300}
mkdir -p "$out"
python=${PYTHON:-python3}
"$python" - "$out/images" "$images" <<'PY'
import sys
from pathlib import Path

import numpy as np
from PIL import Image

root, per_class = Path(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
for label in range(3):
    folder = root / f"class_{label}"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(per_class):
        pixels = rng.integers(0, 160, (64, 64, 3)) + np.eye(3, dtype=int)[label] * 90
        Image.fromarray(pixels.astype("uint8")).save(folder / f"{i:04d}.png")
PY
cd "$out"
HARNESS_CACHE_DIR="$out/cache" "$python" -m harness -m dataset=folder dataset.path="$out/images" \
  dataset.load=memory,stream model="${MODEL:-small_cnn}" seed="${SEEDS:-0,1,2,3,4,5}" epochs="${EPOCHS:-5}" \
  tracking=disabled results_dir="$out/results" reports_dir="$out/reports"
