#!/usr/bin/env bash
# Rebuild the example reports from their stored result files (after a change to the report code):
# every folder here with a results.tar.gz (this one, and tuned_optimizers/) gets its report rebuilt in place.
# The results came from:
#   .                  python -m harness -m experiment=seed_grid seed=0,1,2 tracking=disabled
#   tuned_optimizers/  python -m harness -m experiment=tuned_optimizers tracking=disabled
#   across_workloads/  python -m harness -m experiment=across_workloads tracking=disabled seed=0,1,2,3,4,5
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
for archive in "$here"/results.tar.gz "$here"/*/results.tar.gz; do
  example=$(dirname "$archive")
  work=$(mktemp -d)
  mkdir -p "$work/multirun"
  tar xzf "$archive" -C "$work/multirun"
  sweep=$(ls "$work/multirun")
  (cd "$work" && python -m harness.report "multirun/$sweep" --out "$example")
  rm -rf "$work"
done
