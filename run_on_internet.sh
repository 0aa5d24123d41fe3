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
# are kept; options that shaped them must be the same), --overwrite (delete what the project wrote in OUT/NAME and
# start again); everything after `--` goes to dynaboa.py. Every option is checked before any work.
# An existing experiment is never redone or deleted without --resume or --overwrite: the refusal prints both commands.
# OUT/NAME is an experiment only when it holds the manifest .dynaboa_manifest.json (written when this script claims
# the folder, under a lock: a second launch into the same folder is refused); --overwrite removes only the entries it
# lists (input/, the run's files, export/), never the user's own files in the folder (datasets/experiment.py).
# Without the licensed files (basemodel.pt, SMPL) and with no --data-root, the built-in synthetic assets are used
# (data/builtin/, datasets/builtin_assets.py): a demonstration only, as the warning says and config.json records.
# Everything of a run lives in OUT/NAME/: input/ (INTERNET_ROOT: images/<video>/, <video>.json, <video>_<k>.npz),
# the run (config.json, frames.csv, results.npz, metrics.json) and export/<video>/ (docs/exports.md).
# Source-free adaptation (no Human3.6M) unless the retrieval files and the Human3.6M images are in the data root.
# Many videos, each adapted from the base model on its own: --batch DIR_OR_LIST (a folder of videos or a text file,
# one path a line) with --jobs N (videos at a time, default 2) and --backend local|dask (--scheduler ADDRESS, else a
# local dask cluster): OUT/NAME/videos/<video>/ per video (NAME default: batch; resumable: rerun with --resume),
# one progress bar, and a summary table (OUT/NAME/summary.md) of frames, people, seconds per frame and failures
# (pipelines/batch.py). Ctrl-C at any point ends in one line with the command that continues.
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}  # busy-waiting OpenMP threads collapse on a shared machine
REPO=$(cd "$(dirname "$0")" && pwd)  # paths on the command line stay relative to the caller's directory
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-$REPO/.venv/bin/python}
[ -x "$PY" ] || PY=python3

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }
for arg in "$@"; do case "$arg" in --) break ;; -h|--help) usage 0 ;; esac; done
# every option checked, nothing written yet (pipelines/own_video.py): OUT NAME RUN VIDEOS NAMES EXTRA MODE ...
PLAN=$("$PY" -m pipelines.own_video plan "$0" "$@") || exit $?
eval "$PLAN"
export DYNABOA_RERUN  # a command that a stage prints (resume after Ctrl-C or a full disk) is this script's
[ -z "$DATA_ROOT" ] || export DYNABOA_DATA="$DATA_ROOT"
export INTERNET_ROOT="$RUN/input"
# Ctrl-C: a stage prints one line with the command that continues (pipelines/own_video.py run); between stages, this
# (the command as given until the folder is claimed, nothing having been written; then the one that continues it)
AGAIN=$START_COMMAND
trap '[ -n "${IN_STAGE:-}" ] || echo "run_on_internet.sh: interrupted; what is finished is kept. Continue with:" \
  "$AGAIN" >&2; exit 130' INT
stage() { IN_STAGE=1; "$PY" -m pipelines.own_video run "$@"; local rc=$?; IN_STAGE=""; return $rc; }

# before anything is written into OUT/NAME (pipelines/own_video.py prepare): the built-in synthetic assets when there
# are no licensed files and no data root was chosen (one warning, also in config.json); Human3.6M co-training as the
# original when its files pass the asset check, else source-free; dynaboa.py's check of the options after `--`
BASE=(--dataset internet --expdir "$OUT" --expname "$NAME" --motionloss_weight 0.8 --dynamic_boa 1 --optim_steps 7
      --cos_sim_threshold 3.1e-4 --pose_prior_weight 1e-4)
PREPARED=$("$PY" -m pipelines.own_video prepare "${BASE[@]}" -- ${EXTRA[@]+"${EXTRA[@]}"}) || exit $?
eval "$PREPARED"
[ -z "${DYNABOA_DATA:-}" ] || export DYNABOA_DATA
SETTINGS=("${BASE[@]}" "${SOURCE[@]}" ${EXTRA[@]+"${EXTRA[@]}"})

# the experiment folder, claimed under a lock that this shell holds (fd 9) until it ends (datasets/experiment.py)
CREATED=""; d=$RUN; while [ ! -e "$d" ] && [ ! -L "$d" ]; do CREATED=$d; d=$(dirname "$d"); done
if ! err=$(mkdir -p "$RUN" 2>&1); then
  echo "run_on_internet.sh: error: $RUN: ${err#mkdir: }; choose another --out, or check its permissions" >&2; exit 1
fi
if ! { exec 9>>"$RUN/.dynaboa.lock"; } 2>/dev/null; then
  echo "run_on_internet.sh: error: cannot write into $RUN; choose another --out, or check its permissions" >&2
  exit 1
fi
"$PY" -m pipelines.own_video claim "$RUN" --kind "$KIND" --mode "$MODE" --lock-fd 9 --options "$OPTIONS" \
  --created "$CREATED"
AGAIN=$RESUME_COMMAND

if [ -n "$BATCH" ]; then  # every video through this script on its own, in parallel (pipelines/batch.py)
  exec "$PY" -m pipelines.own_video run -m pipelines.batch "$BATCH" --script "$REPO/run_on_internet.sh" \
    --batch-dir "$RUN" --jobs "$JOBS" --backend "$BACKEND" ${SCHEDULER:+--scheduler "$SCHEDULER"} \
    ${PASS[@]+"${PASS[@]}"} -- ${EXTRA[@]+"${EXTRA[@]}"}
fi

# stages already done (with --resume) are kept: frames are not rewritten, keypoints and tracks not redone
mkdir -p "$INTERNET_ROOT/images"
stage "$REPO/vid2img.py" --out "$INTERNET_ROOT/images" --every "$EVERY" -- "${VIDEOS[@]}"
for name in "${NAMES[@]}"; do  # clip, clip-2: one folder per video
  [ -f "$INTERNET_ROOT/$name.json" ] || \
    stage -m datasets.detector "$INTERNET_ROOT/images/$name" --out "$INTERNET_ROOT/$name.json" ${MULTI[@]+"${MULTI[@]}"}
done
shopt -s nullglob; TRACKS=("$INTERNET_ROOT"/*_[0-9]*.npz); shopt -u nullglob
[ ${#TRACKS[@]} -gt 0 ] || \
  stage "$REPO/process_data.py" --dataset internet --root "$INTERNET_ROOT" --format dynaboa --min-size "$MIN_SIZE"
CONTINUE=()  # dynaboa.py continues its run when there is one (an interruption may have come before it started)
if [ -n "$RESUME" ] && { [ -f "$RUN/frames.csv" ] || [ -d "$RUN/sequences" ]; }; then CONTINUE=(--resume); fi
stage "$REPO/dynaboa.py" "${SETTINGS[@]}" ${CONTINUE[@]+"${CONTINUE[@]}"}
stage -m datasets.export "$RUN" --internet-root "$INTERNET_ROOT" ${EXPORT[@]+"${EXPORT[@]}"}
echo "results: $RUN/results.npz; exports and overlay videos: $RUN/export/"
