#!/usr/bin/env bash
# The synthetic benchmark: builds the synthetic world and the retrieval files if absent (cached), then runs the base
# model, online fine-tuning, BOA, DynaBOA and source-free DynaBOA under GT and estimated 2D, and prints the table.
#   bash run_on_synthetic.sh                  # full (exps/synthetic_full/benchmark.md)
#   bash run_on_synthetic.sh --preset demo    # what `make demo` runs
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}  # busy-waiting OpenMP threads collapse on a shared machine
cd "$(dirname "$0")"
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-egl}
exec "$PY" -m datasets.synthetic.benchmark "$@"
