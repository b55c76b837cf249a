#!/usr/bin/env bash
# Rebuild this example report from its stored result files (after a change to the report code).
# The results came from: python -m harness -m experiment=tuned_optimizers tracking=disabled
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
mkdir -p "$work/multirun"
tar xzf "$here/results.tar.gz" -C "$work/multirun"
cd "$work"
python -m harness.report multirun/tuned_optimizers_2026-11-25_00-18-25_016019 --out "$here"
rm -rf "$work"
