"""The "MediaPipe 2D" protocol of a 3DPW-format target: the embedded detector on the frames, matched to the people.

    python -m datasets.preprocess.mediapipe3dpw --data-root data/synthetic        # cached, resumable
    DYNABOA_DATA=data/synthetic python dynaboa.py --dataset 3dpw --keypoints mp_j2d ...

Two steps, each cached:

1. `detect`: every frame folder `<3dpw>/imageFiles/<seq>/` through the detector exactly as `run_on_internet.sh`
   runs it by default (`datasets.detector.PoseDetector`, one person, the whole frame, video mode: MediaPipe's own
   tracking from frame to frame). Per sequence `<root>/mediapipe_cache/<seq>.npz`: `images` [F], `found` [F],
   `keypoints` [F, 33, 3] (pixels + confidence), `world` [F, 33, 4] (the world landmarks, metres + visibility) and
   `seconds` (the detector's wall time). This step reads the images only: no track file, no ground truth. A finished
   sequence is kept; an interrupted one is detected again from its first frame (MediaPipe's tracking state cannot be
   saved), so a rerun resumes at the first unfinished sequence.
2. `match`: each person track `dataset_extras/3dpw_<seq>_<pid>.npz` gets `<root>/dataset_extras_mediapipe/
   3dpw_<seq>_<pid>.npz` with `mp_j2d` [N, 33, 3] and `mp_world` [N, 33, 4] of the frame's detection when it is this
   person, zeros otherwise (`matched` [N], `match_error` [N]). The ground-truth 2D joints decide only *which person*
   a detection is (median distance of the 12 body joints confident in both, over the person's box side, below
   `MATCH_THRESHOLD`); a miss stays a miss, and a detection of another person or of an empty region is a miss of
   this one. Nothing of the ground truth enters `mp_j2d` or `mp_world`.

The stream (`datasets.pw3d.PW3DStream(keypoints="mp_j2d")`, `datasets.mediapipe_protocol`) maps `mp_j2d` into the
49 joints as the internet path does and takes the box from the confident detections.
"""
from __future__ import annotations

import argparse
import logging
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from config import DataPaths
from datasets.mediapipe_protocol import SIDE_DIR
from utils.io import savez_atomic
from utils.keypoints import CONF_THRESHOLD, to_j49

logger = logging.getLogger(__name__)

CACHE_DIR = "mediapipe_cache"
MATCH_THRESHOLD = 0.2  # median body-joint distance, in box sides, under which a detection is the track's person
BODY_GT = slice(25, 37)  # the 12 body joints of the GT block (ankles, knees, hips, wrists, elbows, shoulders)
# MediaPipe's 33 landmarks with left and right exchanged (nose 0 stays; eyes, ears, mouth, limbs, hands, feet swap)
MIRROR = [0, 4, 5, 6, 1, 2, 3, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21, 24, 23, 26, 25, 28, 27, 30,
          29, 32, 31]


def sequence_folders(pw3d_root: Path) -> list[Path]:
    """The frame folders `<root>/imageFiles/<seq>/`, sorted by name."""
    folder = Path(pw3d_root) / "imageFiles"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found: the 3DPW frames (for the synthetic world: python -m "
                                "datasets.synthetic)")
    return sorted(p for p in folder.iterdir() if p.is_dir())


def detect_sequence(frame_dir: Path, out: Path) -> dict[str, np.ndarray]:
    """The detector over one sequence's frames in order (internet defaults, video mode), saved to `out`."""
    from datasets.detector import NUM_LANDMARKS, PoseDetector, list_frames
    from utils.imutils import read_image_rgb

    frames = list_frames(frame_dir)
    kps = np.zeros((len(frames), NUM_LANDMARKS, 3))
    world = np.zeros((len(frames), NUM_LANDMARKS, 4))
    found = np.zeros(len(frames), dtype=bool)
    started = time.perf_counter()
    with PoseDetector(video=True) as detector:
        for i, path in enumerate(frames):
            people = detector(read_image_rgb(path))
            if people:
                found[i], kps[i] = True, people[0].keypoints
                if people[0].world is not None:
                    world[i] = people[0].world
    arrays = {"images": np.array([p.name for p in frames]), "found": found, "keypoints": kps, "world": world,
              "seconds": np.float64(time.perf_counter() - started)}
    savez_atomic(out, arrays)
    return arrays


def detect(pw3d_root: Path, cache: Path) -> dict[str, float]:
    """Step 1 for every sequence not cached yet; returns {frames, found, seconds} over all cached sequences."""
    cache.mkdir(parents=True, exist_ok=True)
    totals = {"frames": 0, "found": 0, "seconds": 0.0, "detected_now": 0}
    for folder in sequence_folders(pw3d_root):
        out = cache / f"{folder.name}.npz"
        if out.is_file():
            with np.load(out) as data:
                arrays = {"found": data["found"], "seconds": data["seconds"]}
        else:
            logger.info("detecting %s", folder.name)
            arrays = detect_sequence(folder, out)
            totals["detected_now"] += 1
        totals["frames"] += len(arrays["found"])
        totals["found"] += int(arrays["found"].sum())
        totals["seconds"] += float(arrays["seconds"])
    return totals


def match_errors(det_kps: np.ndarray, gt_j2d: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """[N] median distance between the detections' body joints and the person's GT 2D joints, over the box side
    (inf when fewer than 3 joints are confident in both), the smaller of the distances with the detection's left and
    right as given and swapped: a detection of this person with left and right confused (the detector's front/back
    confusion) is still this person's, and stays confused in the stream.

    Args:
        det_kps: [N, 33, 3] MediaPipe keypoints, pixels; gt_j2d: [N, 49, 3] pixels; scale: [N] box side / 200.
    """
    swapped = det_kps[:, MIRROR]
    return np.minimum(_match_errors(det_kps, gt_j2d, scale), _match_errors(swapped, gt_j2d, scale))


def _match_errors(det_kps: np.ndarray, gt_j2d: np.ndarray, scale: np.ndarray) -> np.ndarray:
    det = to_j49(det_kps, "mediapipe33")[:, BODY_GT]
    gt = gt_j2d[:, BODY_GT]
    both = (det[..., 2] > CONF_THRESHOLD) & (gt[..., 2] > 0)
    dist = np.where(both, np.linalg.norm(det[..., :2] - gt[..., :2], axis=-1), np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # frames with no joint in common: inf below
        med = np.nanmedian(np.where(both.sum(1, keepdims=True) >= 3, dist, np.nan), axis=1)
    return np.where(np.isfinite(med), med / np.maximum(scale * 200.0, 1.0), np.inf)


def match_track(track_file: Path, cache: Path, out: Path, threshold: float = MATCH_THRESHOLD) -> dict[str, int]:
    """Step 2 for one person track; returns {frames, matched}."""
    with np.load(track_file) as data:
        names, gt_j2d, scale = data["imgname"], data["j2d"], data["scale"]
    n = len(names)
    kps, world = np.zeros((n, 33, 3)), np.zeros((n, 33, 4))
    found = np.zeros(n, dtype=bool)
    loaded: dict[str, dict] = {}
    for i, name in enumerate(names):
        seq, image = Path(str(name)).parent.name, Path(str(name)).name
        if seq not in loaded:
            with np.load(cache / f"{seq}.npz") as data:
                loaded[seq] = {"index": {str(k): j for j, k in enumerate(data["images"])}, "found": data["found"],
                               "keypoints": data["keypoints"], "world": data["world"]}
        det = loaded[seq]
        j = det["index"].get(image)
        if j is not None and det["found"][j]:
            found[i], kps[i], world[i] = True, det["keypoints"][j], det["world"][j]
    errors = np.where(found, match_errors(kps, gt_j2d, np.asarray(scale, dtype=np.float64)), np.inf)
    matched = errors < threshold
    kps[~matched], world[~matched] = 0.0, 0.0
    savez_atomic(out, {"mp_j2d": kps, "mp_world": world, "matched": matched, "match_error": errors})
    return {"frames": n, "matched": int(matched.sum()), "found": int(found.sum())}


def match(npz_dir: Path, cache: Path, side: Path) -> dict[str, dict[str, int]]:
    """Step 2 for every track file; returns per track {frames, matched, found}."""
    from datasets.pw3d import list_track_files

    side.mkdir(parents=True, exist_ok=True)
    return {path.stem: match_track(path, cache, side / path.name) for path in list_track_files(npz_dir)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=None, help="data root (default: $DYNABOA_DATA or data/)")
    parser.add_argument("--detect-only", action="store_true", help="step 1 only (reads no track file)")
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    paths = DataPaths.from_root(ns.data_root)
    cache = paths.root / CACHE_DIR
    totals = detect(paths.pw3d_root, cache)
    logger.info("detector: %d frames, a person in %d (%.1f %%), %.1f s (%.3f s / frame); %d sequence(s) detected now",
                totals["frames"], totals["found"], 100 * totals["found"] / max(totals["frames"], 1),
                totals["seconds"], totals["seconds"] / max(totals["frames"], 1), totals["detected_now"])
    if ns.detect_only:
        return 0
    tracks = match(paths.dataset_extras, cache, paths.root / SIDE_DIR)
    for name, t in tracks.items():
        logger.info("%s: %d frames, detection in %d, matched to the person in %d (%.1f %%)", name, t["frames"],
                    t["found"], t["matched"], 100 * t["matched"] / max(t["frames"], 1))
    frames, matched = sum(t["frames"] for t in tracks.values()), sum(t["matched"] for t in tracks.values())
    logger.info("all tracks: %d of %d person-frames matched (%.1f %%)", matched, frames, 100 * matched / max(frames, 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
