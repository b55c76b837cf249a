#!/usr/bin/env bash
# Rebuild this example report from its stored result files (after a change to the report code).
# The results came from: python -m harness -m experiment=seed_grid seed=0,1,2 tracking=disabled
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
mkdir -p "$work/multirun"
tar xzf "$here/results.tar.gz" -C "$work/multirun"
cd "$work"
python -m harness.report multirun/seed_grid_2026-11-24_09-34-29_679127 --out "$here"
rm -rf "$work"
