"""Internet videos: 2D keypoints (AlphaPose, OpenPose or this project's format) -> one npz per person track.

    python process_data.py --dataset internet                      # every video under $INTERNET_ROOT
    python process_data.py --dataset internet --root clips --format openpose --tracker greedy

Inputs under `--root` (sorted by video name; `auto` takes all of them, telling the formats apart by content):
- AlphaPose: `<video>.json`, a list of `{image_id, keypoints (17*3 or 26*3), score, box, idx}` (rename AlphaPose's
  `alphapose-results.json` to the video's name). `idx` is a track id only with AlphaPose's pose tracking.
- OpenPose: a folder `<any>/` of `<video>_%012d_keypoints.json` (frame 0 is image `000001.png`), with
  `people[].pose_keypoints_2d` of 25*3 (BODY_25) or 18*3 (COCO-18) numbers.
- This project's `dynaboa-keypoints` JSON `<video>.json` (`utils.keypoints.write_keypoints_json`).
The frames themselves are expected in `<root>/images/<video>/` (`python vid2img.py <video>.mp4`).

Per video: detections are filtered as the original (AlphaPose score >= 2.5; box diagonal of the joints with
confidence > 0.3 >= 250 px, for every format; fewer than 2 confident joints: skipped; NaN joints: missing), separated
into person tracks (the detector's track ids if it gives them, else greedy association of boxes over time, see
`associate`), and each track is written to `<out>/<video>_<k>.npz` (k = 0, 1, ... in order of first appearance) with
`imgname` (N,) `images/<video>/<image>` relative to the root, `center` (N, 2) and `scale` (N,) (SPIN box of the
confident joints), `part` (N, 49, 3) (the 49-joint layout, confidence binarised at 0.3 as the original),
`track_id` (N,) (= k), `frame_ids` (N,) (0-based video frame) and `layout` (the source layout name); with the
embedded detector also `world_landmarks` (N, 33, 4) (its 3D landmarks, metres + visibility; models/teacher3d.py).
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from config import DataPaths, option
from utils.io import savez_atomic
from utils.keypoints import (
    CONF_THRESHOLD,
    CONFIDENCE_MODES,
    confidence_weights,
    is_keypoints_json,
    keypoint_box,
    keypoints_file_from_doc,
    layout_for_count,
    sanitize,
    to_j49,
    visible_diagonal,
)

logger = logging.getLogger(__name__)

FORMATS = ("auto", "alphapose", "openpose", "dynaboa")
OPENPOSE_FILE = re.compile(r"^(?P<video>.+)_(?P<frame>\d{12})_keypoints\.json$")


@dataclass
class InternetConfig:
    """Options of `process_data.py --dataset internet`: where the keypoints are, the original's filters, the tracker."""

    root: Path | None = option("folder of keypoint files; None: $INTERNET_ROOT", default=None)
    out: Path | None = option("folder for the npz files; None: the root", default=None)
    format: str = option("keypoint source format", default="auto", choices=FORMATS)
    min_score: float = option("AlphaPose detection score threshold", default=2.5)
    min_size: float = option("minimum diagonal (px) of the box of the confident joints", default=250.0)
    conf_threshold: float = option("a joint counts above this", default=CONF_THRESHOLD)
    confidence: str = option("a counted joint's weight in the 2D losses: binary (1, the original) or weights (the "
                             "detector's confidence)", default="binary", choices=CONFIDENCE_MODES)
    scale_factor: float = option("box enlargement (scale = f*side/200)", default=1.2)
    tracker: str = option("auto: the detector's track ids when every detection has one, else greedy association",
                          default="auto", choices=("auto", "idx", "greedy"))
    max_gap: int = option("frames a track may miss before it ends", default=10)
    max_dist: float = option("greedy tracker: max centre distance to the predicted box, in box sides", default=0.5)
    min_iou: float = option("greedy tracker: min IoU with the predicted box", default=0.3)
    overwrite: bool = option("replace the track files of an earlier run (off: refuse and change nothing)",
                             default=False)


@dataclass
class VideoDetections:
    """All detections of one video, in one layout. Arrays have one row per detection (M rows).

    Attributes:
        video: video name (frame folder `images/<video>/`, output `<video>_<k>.npz`).
        layout: keypoint layout name (a key of `utils.keypoints.LAYOUTS`).
        frames: [M] 0-based frame index.
        images: [M] image file name of the frame.
        keypoints: [M, K, 3] pixels and confidence.
        scores: [M] detector score (NaN when the format has none).
        track_ids: [M] the detector's track id, -1 when it gives none.
        world: [M, K, 4] the detector's 3D world landmarks (metres + visibility; NaN rows where a detection has
            none), or None when no detection has them.
    """

    video: str
    layout: str
    frames: np.ndarray
    images: list[str]
    keypoints: np.ndarray
    scores: np.ndarray
    track_ids: np.ndarray
    world: np.ndarray | None = None


def _frame_index(image: str, fallback: int) -> int:
    """0-based frame index of an image named `%06d.<ext>` from 1 (vid2img's names), else `fallback`."""
    stem = Path(image).stem
    return int(stem) - 1 if stem.isdigit() else fallback


def _detections(video: str, layout: str, rows: list[tuple[int, str, list, float, int]]) -> VideoDetections:
    """Stack (frame, image, keypoints, score, track id) rows, sorted by frame (stable)."""
    rows = sorted(rows, key=lambda r: r[0])
    count = len(rows)
    kps = np.stack([np.asarray(r[2], dtype=np.float64).reshape(-1, 3) for r in rows]) if count else np.zeros((0, 0, 3))
    return VideoDetections(video, layout, np.array([r[0] for r in rows], dtype=np.int64), [r[1] for r in rows],
                           sanitize(kps), np.array([r[3] for r in rows], dtype=np.float64),
                           np.array([r[4] for r in rows], dtype=np.int64))


def _track_id(value: object) -> int:
    """AlphaPose `idx`: an int, a float or a one-element list; -1 when absent."""
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    return -1 if value is None else int(value)


def read_alphapose(path: Path, entries: list) -> VideoDetections:
    """Detections of an AlphaPose result list (`entries`, parsed from `path`, named after the video)."""
    if not entries:
        return _detections(path.stem, "coco17", [])
    layout = layout_for_count(len(entries[0]["keypoints"]) // 3, ("coco17", "halpe26"))
    order = {img: i for i, img in enumerate(sorted({e["image_id"] for e in entries}))}
    rows = [(_frame_index(e["image_id"], order[e["image_id"]]), e["image_id"], e["keypoints"],
             float(e.get("score", np.nan)), _track_id(e.get("idx"))) for e in entries]
    return _detections(path.stem, layout, rows)


def read_dynaboa(path: Path, doc: dict) -> VideoDetections:
    """Detections of a parsed `dynaboa-keypoints` document."""
    data = keypoints_file_from_doc(doc, str(path))
    rows = [(_frame_index(f.image, i), f.image, p.keypoints, np.nan, -1 if p.track_id is None else int(p.track_id))
            for i, f in enumerate(data.frames) for p in f.people]
    det = _detections(path.stem, data.layout, rows)
    worlds = [p.world for f in data.frames for p in f.people]
    if any(w is not None for w in worlds):  # in the stable frame order of `_detections`
        order = np.argsort([r[0] for r in rows], kind="stable")
        size = len(det.keypoints[0])
        det.world = np.stack([np.full((size, 4), np.nan) if worlds[i] is None else worlds[i] for i in order])
    return det


def read_openpose_folder(folder: Path) -> list[VideoDetections]:
    """Detections of every video in an OpenPose JSON folder (files `<video>_%012d_keypoints.json`)."""
    by_video: dict[str, list] = {}
    for file in sorted(folder.glob("*_keypoints.json")):
        match = OPENPOSE_FILE.match(file.name)
        if match is None:
            logger.warning("%s: not named <video>_<12-digit frame>_keypoints.json; skipped", file)
            continue
        frame = int(match["frame"])
        people = json.loads(file.read_text()).get("people", [])
        by_video.setdefault(match["video"], []).extend(
            (frame, f"{frame + 1:06d}.png", p["pose_keypoints_2d"], np.nan, -1) for p in people)
    out = []
    for video, rows in sorted(by_video.items()):
        layout = layout_for_count(len(rows[0][2]) // 3, ("body25", "coco18")) if rows else "body25"
        out.append(_detections(video, layout, rows))
    return out


def discover(root: Path, fmt: str = "auto") -> list[VideoDetections]:
    """Read every keypoint source of format `fmt` under `root`, sorted by video name."""
    if not root.is_dir():
        raise FileNotFoundError(f"internet-video root {root} not found: create it (or set INTERNET_ROOT / --root) "
                                "and put the keypoint files there (see datasets/preprocess/internet.py)")
    found: list[VideoDetections] = []
    if fmt in ("auto", "alphapose", "dynaboa"):
        for path in sorted(root.glob("*.json")):
            try:
                doc = json.loads(path.read_text())
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} is not valid JSON ({err}); remove it or fix it") from err
            if isinstance(doc, list) and fmt in ("auto", "alphapose"):
                found.append(read_alphapose(path, doc))
            elif is_keypoints_json(doc) and fmt in ("auto", "dynaboa"):
                found.append(read_dynaboa(path, doc))
            else:
                logger.info("%s: not a %s keypoint file; skipped", path, fmt)
    if fmt in ("auto", "openpose"):
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            found.extend(read_openpose_folder(folder))
    return sorted(found, key=lambda d: d.video)


def select(det: VideoDetections, cfg: InternetConfig) -> np.ndarray:
    """[M] bool: detections passing the score, confident-joint and size filters."""
    keep = np.ones(len(det.frames), dtype=bool)
    if len(det.frames) == 0:
        return keep
    keep &= ~(det.scores < cfg.min_score)  # NaN (no score) passes
    _, _, has_box = keypoint_box(det.keypoints, cfg.conf_threshold)
    keep &= has_box & (visible_diagonal(det.keypoints, cfg.conf_threshold) >= cfg.min_size)
    return keep


@dataclass
class _Track:
    """A person track of the greedy tracker: its last two observations give a constant-velocity prediction."""

    label: int
    frame: int
    center: np.ndarray
    side: float
    velocity: np.ndarray  # pixels per frame

    def predict(self, frame: int) -> np.ndarray:
        return self.center + self.velocity * (frame - self.frame)

    def update(self, frame: int, center: np.ndarray, side: float) -> None:
        self.velocity = (center - self.center) / (frame - self.frame)
        self.frame, self.center, self.side = frame, center, side


def square_iou(center_a: np.ndarray, side_a: float, center_b: np.ndarray, side_b: float) -> float:
    """IoU of two axis-aligned squares given by centre (x, y) and side (pixels)."""
    low = np.maximum(center_a - side_a / 2, center_b - side_b / 2)
    high = np.minimum(center_a + side_a / 2, center_b + side_b / 2)
    inter = float(np.prod(np.clip(high - low, 0.0, None)))
    union = side_a**2 + side_b**2 - inter
    return inter / union if union > 0 else 0.0


def associate(frames: np.ndarray, centers: np.ndarray, sides: np.ndarray, max_gap: int = 10,
              max_dist: float = 0.5, min_iou: float = 0.3) -> np.ndarray:
    """Greedy tracking of person boxes over time.

    Frame by frame, each live track (seen at most `max_gap` frames ago) predicts its box centre at constant
    velocity; (track, detection) pairs whose IoU with the predicted box is >= `min_iou` or whose centre distance is
    <= `max_dist` mean box sides are matched greedily, largest IoU first (then nearest); every unmatched detection
    starts a new track. Constant velocity keeps identities through crossings, where the nearest box alone swaps them.

    Args:
        frames: [M] 0-based frame index of each detection.
        centers: [M, 2] box centres, pixels.
        sides: [M] box sides, pixels.

    Returns:
        [M] int track labels (0, 1, ... in order of creation).
    """
    assert centers.shape == (len(frames), 2) and sides.shape == (len(frames),), "frames/centers/sides mismatch"
    labels = np.full(len(frames), -1, dtype=np.int64)
    tracks: list[_Track] = []
    for frame in np.unique(frames).tolist():
        dets = [int(i) for i in np.flatnonzero(frames == frame)]
        live = [t for t in tracks if 0 < frame - t.frame <= max_gap]
        pairs = []
        for t in live:
            pred = t.predict(frame)
            for d in dets:
                iou = square_iou(pred, t.side, centers[d], float(sides[d]))
                dist = float(np.linalg.norm(pred - centers[d])) / ((t.side + float(sides[d])) / 2)
                if iou >= min_iou or dist <= max_dist:
                    pairs.append((-iou, dist, t.label, d))
        matched_tracks: set[int] = set()
        for _, _, label, d in sorted(pairs):
            if label in matched_tracks or labels[d] >= 0:
                continue
            tracks[label].update(frame, centers[d], float(sides[d]))
            labels[d] = label
            matched_tracks.add(label)
        for d in dets:
            if labels[d] < 0:
                labels[d] = len(tracks)
                tracks.append(_Track(len(tracks), frame, centers[d], float(sides[d]), np.zeros(2)))
    return labels


def _ids_are_tracks(det: VideoDetections) -> bool:
    """True if every detection has a track id and no id repeats within a frame (AlphaPose without pose tracking
    writes `idx` 0 for everyone)."""
    if (det.track_ids < 0).any():
        return False
    pairs = set(zip(det.frames.tolist(), det.track_ids.tolist(), strict=True))
    return len(pairs) == len(det.frames)


def split_tracks(det: VideoDetections, centers: np.ndarray, sides: np.ndarray, cfg: InternetConfig) -> np.ndarray:
    """[M] track label per detection, numbered 0, 1, ... by first appearance (frame, then box centre x)."""
    if cfg.tracker == "idx" and (det.track_ids < 0).any():
        raise ValueError(f"{det.video}: --tracker idx but some detections carry no track id")
    if cfg.tracker == "idx" or (cfg.tracker == "auto" and _ids_are_tracks(det)):
        raw = det.track_ids
    else:
        if cfg.tracker == "auto" and (det.track_ids >= 0).any():
            logger.info("%s: the detector's ids repeat within a frame (no tracking); associating boxes", det.video)
        raw = associate(det.frames, centers, sides, cfg.max_gap, cfg.max_dist, cfg.min_iou)
    first: dict[int, int] = {}
    for i in np.lexsort((centers[:, 0], det.frames)):
        first.setdefault(int(raw[i]), len(first))
    return np.array([first[int(r)] for r in raw], dtype=np.int64)


def _dedupe(labels: np.ndarray, frames: np.ndarray, scores: np.ndarray, sides: np.ndarray) -> np.ndarray:
    """[M] bool keeping one detection per (track, frame): the best score, then the largest box."""
    keep = np.zeros(len(labels), dtype=bool)
    best: dict[tuple[int, int], int] = {}
    for i in range(len(labels)):
        key = (int(labels[i]), int(frames[i]))
        j = best.get(key)
        rank_i = (np.nan_to_num(scores[i], nan=0.0), sides[i])
        if j is None or rank_i > (np.nan_to_num(scores[j], nan=0.0), sides[j]):
            best[key] = i
    keep[list(best.values())] = True
    return keep


def process_video(det: VideoDetections, out_dir: Path, cfg: InternetConfig) -> list[Path]:
    """Filter, track and write the npz files of one video; returns the files written."""
    keep = select(det, cfg)
    if not keep.any():
        logger.warning("%s: no person passed the filters (%d detections); nothing written", det.video,
                       len(det.frames))
        return []
    idx = np.flatnonzero(keep)
    kept = VideoDetections(det.video, det.layout, det.frames[idx], [det.images[i] for i in idx],
                           det.keypoints[idx], det.scores[idx], det.track_ids[idx],
                           None if det.world is None else det.world[idx])
    center, scale, _ = keypoint_box(kept.keypoints, cfg.conf_threshold, cfg.scale_factor)
    labels = split_tracks(kept, center, scale * 200.0, cfg)
    unique = _dedupe(labels, kept.frames, kept.scores, scale)
    part = confidence_weights(to_j49(kept.keypoints, kept.layout), cfg.confidence, cfg.conf_threshold)
    written = []
    for label in range(int(labels.max()) + 1):
        rows = np.flatnonzero((labels == label) & unique)
        rows = rows[np.argsort(kept.frames[rows], kind="stable")]
        path = out_dir / f"{det.video}_{label}.npz"
        savez_atomic(path, dict(imgname=np.array([f"images/{det.video}/{kept.images[i]}" for i in rows]),
                                center=center[rows], scale=scale[rows], part=part[rows],
                                track_id=np.full(len(rows), label, dtype=np.int64), frame_ids=kept.frames[rows],
                                layout=np.array(det.layout),
                                **({} if kept.world is None else {"world_landmarks": kept.world[rows]})))
        written.append(path)
    logger.info("%s: %d of %d detections kept, %d track(s)", det.video, int(unique.sum()), len(det.frames),
                len(written))
    return written


def existing_tracks(out_dir: Path, videos: list[str]) -> list[Path]:
    """The `<video>_<k>.npz` files of the given videos already in `out_dir` (from an earlier run)."""
    patterns = [re.compile(re.escape(video) + r"_\d+\.npz") for video in videos]
    return [p for p in sorted(out_dir.glob("*.npz")) if any(pat.fullmatch(p.name) for pat in patterns)]


CONFIG = InternetConfig  # what process_data.py reads the options into


def run(cfg: InternetConfig, data_root: Path | None = None) -> int:
    """Convert every video's keypoints under the root (options parsed by `process_data.py`, or a config); returns 0
    (1 if no keypoint file or no person was found, or earlier track files would be replaced)."""
    root = cfg.root if cfg.root is not None else DataPaths.from_root(data_root).internet_root
    out_dir = cfg.out if cfg.out is not None else root
    out_dir.mkdir(parents=True, exist_ok=True)
    videos = discover(root, cfg.format)
    if not videos:
        logger.error("no %s keypoint files under %s", cfg.format, root)
        return 1
    earlier = existing_tracks(out_dir, [det.video for det in videos])
    if earlier and not cfg.overwrite:
        logger.error("%s already holds the track files of an earlier run (%s); nothing was changed: pass "
                     "--overwrite to replace them", out_dir, ", ".join(p.name for p in earlier))
        return 1
    for stale in earlier:  # a rerun with fewer tracks leaves none behind
        stale.unlink()
    total = sum(len(process_video(det, out_dir, cfg)) for det in videos)
    if total == 0:
        logger.error("no person found in %s (%d detections in all; a person needs %d px of confidently detected "
                     "joints, --min-size): nothing to adapt on; try a video where a person is seen whole, or a lower "
                     "--min-size", ", ".join(det.video for det in videos), sum(len(d.frames) for d in videos),
                     int(cfg.min_size))
        return 1
    logger.info("%d npz file(s) written to %s", total, out_dir)
    return 0
