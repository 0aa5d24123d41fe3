#!/usr/bin/env bash
# DynaBOA on your own videos, end to end: frames -> 2D keypoints (embedded MediaPipe detector) -> person tracks ->
# online adaptation with the original's internet settings (docs/method.md §10) -> exports and overlay videos.
#
#   bash run_on_internet.sh dance.mp4 walk.mov                      # -> exps/internet/
#   bash run_on_internet.sh clip.mp4 --out exps --expname clip --multi-person --obj -- --max-frames 200 --lr 1e-5
#
# Options: --out DIR (output root, default exps), --expname NAME (default internet), --data-root DIR (default
# $DYNABOA_DATA or data/), --multi-person (tiled MediaPipe search, several people per frame), --min-size PX (smallest
# person: diagonal of the confident joints' box, default 250 as the original), --every N (every N-th frame), --obj
# (per-frame meshes), --no-video (no overlay video), --resume (continue an interrupted experiment: finished stages
# are kept), --overwrite (delete the experiment OUT/NAME and start again); everything after `--` goes to dynaboa.py.
# An existing experiment is never redone or deleted without --resume or --overwrite: the refusal prints both commands.
# Without the licensed files (basemodel.pt, SMPL) and with no --data-root, the built-in synthetic assets are used
# (data/builtin/, datasets/builtin_assets.py): a demonstration only, as the warning says and config.json records.
# Everything of a run lives in OUT/NAME/: input/ (INTERNET_ROOT: images/<video>/, <video>.json, <video>_<k>.npz),
# the run (config.json, frames.csv, results.npz, metrics.json) and export/<video>/ (docs/exports.md).
# Source-free adaptation (no Human3.6M) unless the retrieval files and the Human3.6M images are in the data root.
# Many videos, each adapted from the base model on its own: --batch DIR_OR_LIST (a folder of videos or a text file,
# one path a line) with --jobs N (videos at a time, default 2) and --backend local|dask (--scheduler ADDRESS, else a
# local dask cluster): OUT/NAME/videos/<video>/ per video (resumable: rerun with --resume), one progress bar, and a
# summary table (OUT/NAME/summary.md) of frames, people, seconds per frame and failures (pipelines/batch.py).
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}  # busy-waiting OpenMP threads collapse on a shared machine
ARGS=("$@")
REPO=$(cd "$(dirname "$0")" && pwd)  # paths on the command line stay relative to the caller's directory
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-$REPO/.venv/bin/python}
[ -x "$PY" ] || PY=python3

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }
OUT=exps; NAME=internet; DATA_ROOT=""; EVERY=1; MIN_SIZE=250; MULTI=(); EXPORT=(); VIDEOS=(); EXTRA=()
RESUME=""; OVERWRITE=""; BATCH=""; JOBS=2; BACKEND=local; SCHEDULER=""; PASS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --expname) NAME=$2; shift 2 ;;
    --data-root) DATA_ROOT=$2; shift 2 ;;
    --every) EVERY=$2; PASS+=("--option=$1" "--option=$2"); shift 2 ;;
    --min-size) MIN_SIZE=$2; PASS+=("--option=$1" "--option=$2"); shift 2 ;;
    --multi-person) MULTI=(--multi-person); PASS+=("--option=$1"); shift ;;
    --obj) EXPORT+=(--obj); PASS+=("--option=$1"); shift ;;
    --no-video) EXPORT+=(--no-video); PASS+=("--option=$1"); shift ;;
    --batch) BATCH=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --backend) BACKEND=$2; shift 2 ;;
    --scheduler) SCHEDULER=$2; shift 2 ;;
    --resume) RESUME=1; shift ;;
    --overwrite) OVERWRITE=1; shift ;;
    -h|--help) usage 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    -*) echo "run_on_internet.sh: unknown option $1" >&2; usage 2 ;;
    *) VIDEOS+=("$1"); shift ;;
  esac
done
[ ${#VIDEOS[@]} -gt 0 ] || [ -n "$BATCH" ] || { echo "run_on_internet.sh: give at least one video" >&2; usage 2; }
if [ -n "$BATCH" ] && [ ${#VIDEOS[@]} -gt 0 ]; then
  echo "run_on_internet.sh: give videos or --batch DIR_OR_LIST, not both" >&2; exit 2
fi
for arg in ${EXTRA[@]+"${EXTRA[@]}"}; do  # the older spelling `-- --resume` / `-- --overwrite` still works
  case "$arg" in --resume) RESUME=1 ;; --overwrite) OVERWRITE=1 ;; esac
done
if [ -n "$RESUME" ] && [ -n "$OVERWRITE" ]; then
  echo "run_on_internet.sh: give --resume or --overwrite, not both" >&2; exit 2
fi
case "$NAME" in ""|.|..|*/*) echo "run_on_internet.sh: --expname must be a plain name, got '$NAME'" >&2; exit 2 ;; esac
[ -z "$DATA_ROOT" ] || export DYNABOA_DATA="$DATA_ROOT"

RUN="$OUT/$NAME"
export INTERNET_ROOT="$RUN/input"
# an existing experiment: refused before anything is redone or deleted, with the two commands that work
if [ -d "$RUN" ] && [ -n "$(ls -A "$RUN")" ] && [ -z "$RESUME$OVERWRITE" ]; then
  echo "run_on_internet.sh: $RUN already holds an experiment; nothing was changed. Continue it: bash $(printf '%q ' \
"$0" --resume "${ARGS[@]}")  or replace it: bash $(printf '%q ' "$0" --overwrite "${ARGS[@]}")" >&2
  exit 1
fi
if [ -n "$OVERWRITE" ] && [ -d "$RUN" ]; then
  echo "run_on_internet.sh: --overwrite: deleting $RUN" >&2; rm -rf "$RUN"
fi
[ -n "$BATCH" ] || mkdir -p "$INTERNET_ROOT/images"

# no licensed files and no data root chosen: the built-in synthetic assets, with one warning (also in config.json)
if [ -z "${DYNABOA_DATA:-}" ] && ! "$PY" "$REPO/process_data.py" --check-assets --for internet --source-free \
    >/dev/null 2>&1; then
  DYNABOA_DATA=$("$PY" -m datasets.builtin_assets); export DYNABOA_DATA
fi

if [ -n "$BATCH" ]; then  # every video through this script on its own, in parallel (pipelines/batch.py)
  mkdir -p "$RUN"
  exec "$PY" -m pipelines.batch "$BATCH" --script "$REPO/run_on_internet.sh" --batch-dir "$RUN" --jobs "$JOBS" \
    --backend "$BACKEND" ${SCHEDULER:+--scheduler "$SCHEDULER"} ${PASS[@]+"${PASS[@]}"} -- ${EXTRA[@]+"${EXTRA[@]}"}
fi

# Human3.6M co-training as the original when its files are there (the asset check passes), else source-free;
# then dynaboa.py's own asset check, so that a missing file stops the script before any work
MODE=(--source-free)
if "$PY" "$REPO/process_data.py" --check-assets --for internet >/dev/null 2>&1; then MODE=(--retrieval 1); fi
SETTINGS=(--dataset internet --expdir "$OUT" --expname "$NAME" "${MODE[@]}" --motionloss_weight 0.8
          --dynamic_boa 1 --optim_steps 7 --cos_sim_threshold 3.1e-4 --pose_prior_weight 1e-4 "${EXTRA[@]}")
"$PY" "$REPO/dynaboa.py" "${SETTINGS[@]}" --check-assets >/dev/null

# stages already done (with --resume) are kept: frames are not rewritten, keypoints and tracks not redone
"$PY" "$REPO/vid2img.py" "${VIDEOS[@]}" --out "$INTERNET_ROOT/images" --every "$EVERY"
mapfile -t NAMES < <("$PY" "$REPO/vid2img.py" "${VIDEOS[@]}" --print-names)  # clip, clip-2: one folder per video
for name in "${NAMES[@]}"; do
  [ -f "$INTERNET_ROOT/$name.json" ] || \
    "$PY" -m datasets.detector "$INTERNET_ROOT/images/$name" --out "$INTERNET_ROOT/$name.json" ${MULTI[@]+"${MULTI[@]}"}
done
if ! compgen -G "$INTERNET_ROOT/*_[0-9]*.npz" >/dev/null; then
  "$PY" "$REPO/process_data.py" --dataset internet --root "$INTERNET_ROOT" --format dynaboa --min-size "$MIN_SIZE"
fi
"$PY" "$REPO/dynaboa.py" "${SETTINGS[@]}" ${RESUME:+--resume}
"$PY" -m datasets.export "$RUN" --internet-root "$INTERNET_ROOT" ${EXPORT[@]+"${EXPORT[@]}"}
echo "results: $RUN/results.npz; exports and overlay videos: $RUN/export/"
