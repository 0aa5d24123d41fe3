#!/usr/bin/env bash
# DynaBOA on the 3DPW test set with the paper's settings (docs/method.md §10), GT 2D keypoints (#PS).
#   bash run_on_3dpw.sh                      # data root: $DYNABOA_DATA or data/
#   bash run_on_3dpw.sh --expname mine --resume
# Without the real data it stops at once, listing each missing file and where it comes from.
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}  # busy-waiting OpenMP threads collapse on a shared machine
cd "$(dirname "$0")"
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
exec "$PY" dynaboa.py --expdir exps --expname 3dpw --dataset 3dpw \
  --dynamic_boa 1 --optim_steps 7 --cos_sim_threshold 3.1e-4 --retrieval 1 "$@"
