#!/usr/bin/env bash
# The synthetic benchmark: builds the synthetic world and the retrieval files if absent (cached), then runs the
# methods of a plan (pipelines/plans/*.yaml) in parallel processes and writes the tables and the curves.
#   bash run_on_synthetic.sh                   # the benchmark of record (exps/synthetic_full/benchmark.md, curves)
#   bash run_on_synthetic.sh --plan quick      # a short check: the first target sequence
#   bash run_on_synthetic.sh --plan sweep      # the validation world's choice of rates
#   bash run_on_synthetic.sh --plan demo       # what `make demo` runs
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}  # busy-waiting OpenMP threads collapse on a shared machine
cd "$(dirname "$0")"
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-egl}
exec "$PY" -m pipelines.benchmark "$@"
