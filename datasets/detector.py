"""Embedded 2D keypoint detector: MediaPipe Pose (BlazePose GHUM, 33 landmarks), offline, on the CPU.

    python -m datasets.detector data/internet/images/dance                   # -> data/internet/dance.json
    python -m datasets.detector frames/dance --out dance.json --multi-person

It writes the project's `dynaboa-keypoints` JSON (layout `mediapipe33`, `utils.keypoints`) that
`python process_data.py --dataset internet --format dynaboa` reads. MediaPipe 0.10.21's bundled full model
(`model_complexity=1`) runs with nothing to download; `make install` installs it (its own `--no-deps` step).

Keypoints: the 33 landmarks in full-frame pixels; the confidence of a landmark is its `visibility` times its
`presence` where the graph fills `presence` (the legacy `solutions.pose` graph fills only `visibility`), and 0 for a
landmark outside the analysed window (MediaPipe extrapolates landmarks it cannot see). `utils.keypoints` maps them
into the 49-joint layout (foot index -> big toe; inner/outer eyes, mouth and fingers have no counterpart).

One person or several. MediaPipe Pose returns at most one person per image. Single-person mode (the default) runs
it on the whole frame; on a frame sequence in video mode, so MediaPipe tracks the person from frame to frame.
Multi-person mode runs it on person proposals:

- the whole frame, plus square tiles of side `scale * min(W, H)` for each of `scales`, overlapping by `overlap`
  (1 + 12 + 35 = 48 windows on a 1368x912 photo, about 1.3 s on 2 cores); on a frame sequence the tiles are searched
  every `search_every` frames and, in between, a window of 1.5 box sides around each person of the previous frame;
- each window gives at most one candidate; a candidate with fewer than `min_joints` confident mapped joints, or
  with no confident shoulder (the limbs-only view of a tile cutting through a person), is dropped;
- keypoint non-maximum suppression: candidates sorted by score (sum of the mapped joints' confidences) are kept
  unless, for a kept person, the median distance between the joints confident in both is below `same_person` box
  sides (views of one person from several windows agree on the joints they share; two people do not), or the
  candidate is a part view of it (a box at most 2/3 of the kept one's, 80% of its joints inside it); a whole view
  replaces the part views of it kept before.

Limits of the multi-person search: a person MediaPipe's own person detector misses in every window is missed
(heavy occlusion; people smaller than about a tenth of the frame's short side); when two people share a window
only one of them comes out of it; no identities are kept (the greedy tracker of `process_data.py` associates boxes
over time); the cost grows with the number of windows.
"""
from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from config import add_dataclass_arguments, config_from_namespace, option
from utils.keypoints import (
    CONF_THRESHOLD,
    LAYOUTS,
    FrameKeypoints,
    KeypointsFile,
    PersonKeypoints,
    keypoint_box,
    write_keypoints_json,
)

logger = logging.getLogger(__name__)

LAYOUT = "mediapipe33"
NUM_LANDMARKS = 33
MAPPED = np.array([concept is not None for _, concept in LAYOUTS[LAYOUT]])  # [33] landmarks with a 49-joint slot
SHOULDERS = [11, 12]  # MediaPipe left/right shoulder
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
MEDIAPIPE_PIN = "mediapipe==0.10.21"
Window = tuple[int, int, int, int]  # x0, y0, x1, y1 pixels (x1, y1 exclusive)


@dataclass
class DetectorConfig:
    """Options of the MediaPipe detector."""

    multi_person: bool = option("several people: tiled search + keypoint NMS; off = one person, whole frame",
                                default=False)
    min_detection_confidence: float = option("MediaPipe person-detection threshold", default=0.5)
    min_tracking_confidence: float = option("MediaPipe landmark-tracking threshold (single person, video)",
                                            default=0.5)
    scales: tuple[float, ...] = option("tile sides as fractions of min(W, H) (multi-person)", default=(0.6, 0.4))
    overlap: float = option("overlap of neighbouring tiles (multi-person)", default=0.5)
    min_joints: int = option("fewer confident mapped joints (of 21) than this is no person (multi-person)",
                             default=10)
    same_person: float = option("keypoint NMS: median joint distance below this many box sides = same person",
                                default=0.1)
    search_every: int = option("frame sequences: tiled search every N frames, tracked windows between",
                               default=10)


@dataclass
class Detection:
    """One person.

    Attributes:
        keypoints: [33, 3] (x, y) full-frame pixels and confidence in [0, 1], MediaPipe landmark order.
        score: sum of the confidences of the 21 landmarks that map into the 49-joint layout.
        world: [33, 4] MediaPipe's `pose_world_landmarks`: metres, origin between the hips, camera-aligned axes, and
            visibility; None when the graph gave none (models/teacher3d.py uses them as a 3D target).
    """

    keypoints: np.ndarray
    score: float
    world: np.ndarray | None = None

    @property
    def side(self) -> float:
        """Side (pixels) of the tight box of the confident landmarks (0 when fewer than two)."""
        _, scale, _ = keypoint_box(self.keypoints[None], CONF_THRESHOLD)
        return float(scale[0] * 200.0)


def import_mediapipe() -> ModuleType:
    """Import MediaPipe (lazily: only the detector needs it), or explain how to install it."""
    os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ logging: warnings and errors only
    try:
        import mediapipe
    except ImportError as err:
        raise ImportError(
            f"the embedded 2D detector needs MediaPipe: run `make install`, or `pip install --no-deps {MEDIAPIPE_PIN}` "
            "followed by the pins of absl-py, attrs, flatbuffers, protobuf and matplotlib in requirements.txt "
            "(its declared dependencies would replace numpy 2 and OpenCV)") from err
    return mediapipe


def landmarks_to_keypoints(landmarks: Sequence[Any], window: Window) -> np.ndarray:
    """MediaPipe normalised landmarks of a window to full-frame keypoints.

    Args:
        landmarks: 33 landmarks with `x`, `y` (fractions of the window's width and height), `visibility` and,
            when the graph fills it, `presence`.
        window: (x0, y0, x1, y1) of the analysed window in the full frame, pixels.
    Returns:
        [33, 3] (x, y) pixels and confidence = visibility x presence (presence 1 when not filled); 0 for a landmark
        outside the window.
    """
    assert len(landmarks) == NUM_LANDMARKS, len(landmarks)
    x0, y0, x1, y1 = window
    out = np.zeros((NUM_LANDMARKS, 3))
    for i, lm in enumerate(landmarks):
        presence = lm.presence if lm.HasField("presence") else 1.0
        out[i] = (x0 + lm.x * (x1 - x0), y0 + lm.y * (y1 - y0), lm.visibility * presence)
    inside = (out[:, 0] >= x0) & (out[:, 0] < x1) & (out[:, 1] >= y0) & (out[:, 1] < y1)
    out[~inside, 2] = 0.0
    return out


def _starts(length: int, side: int, stride: int) -> list[int]:
    """Tile starts covering [0, length): every `stride`, the last one flush with the end."""
    starts = list(range(0, max(length - side, 0) + 1, stride))
    if starts[-1] + side < length:
        starts.append(length - side)
    return starts


def search_windows(width: int, height: int, scales: Sequence[float], overlap: float) -> list[Window]:
    """The whole frame, then square tiles of side `scale * min(W, H)` overlapping by `overlap`, per scale."""
    assert 0.0 <= overlap < 1.0, overlap
    windows: list[Window] = [(0, 0, width, height)]
    for scale in scales:
        side = max(int(round(scale * min(width, height))), 1)
        stride = max(int(round(side * (1.0 - overlap))), 1)
        xs, ys = _starts(width, side, stride), _starts(height, side, stride)
        windows += [(x, y, x + side, y + side) for y in ys for x in xs]
    return windows


def window_around(det: Detection, width: int, height: int, factor: float = 1.5) -> Window | None:
    """Square window of `factor` box sides centred on a person's confident landmarks, clipped to the frame."""
    center, scale, valid = keypoint_box(det.keypoints[None], CONF_THRESHOLD, factor)
    if not valid[0]:
        return None
    half = scale[0] * 100.0
    x0, y0 = max(int(center[0, 0] - half), 0), max(int(center[0, 1] - half), 0)
    x1, y1 = min(int(center[0, 0] + half) + 1, width), min(int(center[0, 1] + half) + 1, height)
    return (x0, y0, x1, y1) if x1 - x0 > 1 and y1 - y0 > 1 else None


def is_plausible(det: Detection, min_joints: int) -> bool:
    """At least `min_joints` confident mapped landmarks, a shoulder among them (drops the limbs-only views that tiles
    cutting through a person give)."""
    conf = det.keypoints[:, 2] > CONF_THRESHOLD
    return int((conf & MAPPED).sum()) >= min_joints and bool(conf[SHOULDERS].any())


def make_detection(keypoints: np.ndarray, world: np.ndarray | None = None) -> Detection:
    """A Detection scored by the confidences of its mapped landmarks (with its world landmarks, when given)."""
    assert keypoints.shape == (NUM_LANDMARKS, 3), keypoints.shape
    return Detection(keypoints, float(keypoints[MAPPED, 2].sum()), world)


def world_landmarks(landmarks: Sequence[Any]) -> np.ndarray:
    """MediaPipe's 33 world landmarks -> [33, 4] (x, y, z metres; visibility x presence as `landmarks_to_keypoints`)."""
    assert len(landmarks) == NUM_LANDMARKS, len(landmarks)
    return np.array([(lm.x, lm.y, lm.z, lm.visibility * (lm.presence if lm.HasField("presence") else 1.0))
                     for lm in landmarks], dtype=np.float64)


def _inside_fraction(points: np.ndarray, det: Detection, margin: float = 0.1) -> float:
    """Fraction of points [N, 2] inside the tight box of `det`'s confident landmarks enlarged by `margin` per side."""
    conf = det.keypoints[:, 2] > CONF_THRESHOLD
    low, high = det.keypoints[conf, :2].min(axis=0), det.keypoints[conf, :2].max(axis=0)
    pad = margin * (high - low)
    return float(((points >= low - pad) & (points <= high + pad)).all(axis=1).mean())


def is_part_view(small: Detection, big: Detection) -> bool:
    """`small` is a limb or part view of the person `big`: a box at most 2/3 of `big`'s, 80% of its confident mapped
    joints inside `big`'s box (enlarged by 10% per side)."""
    part = (small.keypoints[:, 2] > CONF_THRESHOLD) & MAPPED
    return 1.5 * small.side <= big.side and part.any() and _inside_fraction(small.keypoints[part, :2], big) >= 0.8


def is_duplicate(cand: Detection, kept: Detection, threshold: float, min_shared: int = 3) -> bool:
    """True if `cand` is another view of the person `kept`: the joints confident in both lie within `threshold`
    box sides of each other (median distance), or `cand` is a part view of `kept`."""
    shared = (cand.keypoints[:, 2] > CONF_THRESHOLD) & (kept.keypoints[:, 2] > CONF_THRESHOLD) & MAPPED
    if shared.sum() >= min_shared:
        dist = np.linalg.norm(cand.keypoints[shared, :2] - kept.keypoints[shared, :2], axis=1)
        if float(np.median(dist)) < threshold * max(cand.side, kept.side, 1.0):
            return True
    return is_part_view(cand, kept)


def keypoint_nms(candidates: Sequence[Detection], threshold: float) -> list[Detection]:
    """Greedy non-maximum suppression by keypoint agreement, best score first; a whole view of a person replaces the
    part views of it kept before. Returns the people, best score first."""
    kept: list[Detection] = []
    for det in sorted(candidates, key=lambda d: -d.score):
        if not any(is_duplicate(det, k, threshold) for k in kept):
            kept = [k for k in kept if not is_part_view(k, det)] + [det]
    return sorted(kept, key=lambda d: -d.score)


def largest_person(detections: Sequence[Detection]) -> Detection | None:
    """The person with the largest box of confident landmarks (None if there is none with a box)."""
    boxed = [d for d in detections if d.side > 0]
    return max(boxed, key=lambda d: d.side) if boxed else None


class PoseDetector:
    """MediaPipe Pose on images or on the frames of one video in order.

    Args:
        cfg: detector options.
        video: consecutive calls are frames of one video (MediaPipe tracking in single-person mode, tracked
            windows between tiled searches in multi-person mode).
    """

    def __init__(self, cfg: DetectorConfig | None = None, video: bool = False) -> None:
        self.cfg = cfg or DetectorConfig()
        self.video = video
        pose_api = import_mediapipe().solutions.pose
        single_video = video and not self.cfg.multi_person
        self._pose = pose_api.Pose(static_image_mode=not single_video, model_complexity=1,
                                   min_detection_confidence=self.cfg.min_detection_confidence,
                                   min_tracking_confidence=self.cfg.min_tracking_confidence)
        self._previous: list[Detection] = []
        self._frames = 0

    def __call__(self, image: np.ndarray) -> list[Detection]:
        """People in an image.

        Args:
            image: [H, W, 3] uint8 RGB.
        Returns:
            Detections, best score first (at most one in single-person mode).
        """
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8, (image.shape, image.dtype)
        height, width = image.shape[:2]
        if not self.cfg.multi_person:
            found = self._in_window(image, (0, 0, width, height))
            return [found] if found is not None else []
        if not self.video or self._frames % max(self.cfg.search_every, 1) == 0:
            windows = search_windows(width, height, self.cfg.scales, self.cfg.overlap)
        else:
            windows = [(0, 0, width, height)] + [w for d in self._previous
                                                 if (w := window_around(d, width, height)) is not None]
        self._frames += 1
        candidates = [d for w in windows if (d := self._in_window(image, w)) is not None
                      and is_plausible(d, self.cfg.min_joints)]
        self._previous = keypoint_nms(candidates, self.cfg.same_person)
        return self._previous

    def _in_window(self, image: np.ndarray, window: Window) -> Detection | None:
        x0, y0, x1, y1 = window
        result = self._pose.process(np.ascontiguousarray(image[y0:y1, x0:x1]))
        if result.pose_landmarks is None:
            return None
        world = getattr(result, "pose_world_landmarks", None)
        return make_detection(landmarks_to_keypoints(result.pose_landmarks.landmark, window),
                              None if world is None else world_landmarks(world.landmark))

    def close(self) -> None:
        """Release MediaPipe's graph."""
        self._pose.close()

    def __enter__(self) -> PoseDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def list_frames(frame_dir: Path) -> list[Path]:
    """The images of a frame folder, sorted by name (vid2img's `%06d.png` names sort in frame order)."""
    if not frame_dir.is_dir():
        raise FileNotFoundError(f"frame folder {frame_dir} not found: extract a video's frames with "
                                f"`python vid2img.py VIDEO --out {frame_dir.parent}`")
    frames = sorted(p for p in frame_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not frames:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {frame_dir}")
    return frames


def detect_frame_dir(frame_dir: Path, cfg: DetectorConfig | None = None) -> KeypointsFile:
    """Detect the people in every frame of a folder, in order, as one video.

    Returns:
        The video's keypoints (layout `mediapipe33`, fps from the folder's `meta.json` when vid2img wrote one,
        else 0); people carry no track id.
    """
    from tqdm import tqdm

    from utils.imutils import read_image_rgb
    from utils.video import META_NAME, read_meta

    frames = list_frames(Path(frame_dir))
    fps = float(read_meta(frame_dir).get("fps", 0.0)) if (Path(frame_dir) / META_NAME).is_file() else 0.0
    out: list[FrameKeypoints] = []
    skipped: list[str] = []
    with PoseDetector(cfg, video=True) as detector:
        for path in tqdm(frames, desc=f"detecting {Path(frame_dir).name}", dynamic_ncols=True):
            try:
                image = read_image_rgb(path)
            except (FileNotFoundError, ValueError) as err:  # one bad frame: skipped, the rest is detected
                logger.warning("%s: skipped (%s); the frame gets no keypoints", path, err)
                skipped.append(path.name)
                continue
            out.append(FrameKeypoints(path.name, [PersonKeypoints(d.keypoints, world=d.world)
                                                  for d in detector(image)]))
    found = sum(bool(f.people) for f in out)
    logger.info("%s: people found in %d of %d frames%s", frame_dir, found, len(frames),
                f"; {len(skipped)} unreadable frame(s) skipped: {', '.join(skipped[:5])}" if skipped else "")
    if not found:
        logger.warning("%s: no person was found in any frame", frame_dir)
    return KeypointsFile(LAYOUT, fps, out)


def default_output(frame_dir: Path) -> Path:
    """`<root>/images/<video>/` -> `<root>/<video>.json` (where process_data.py looks), else `<frame_dir>.json`."""
    frame_dir = Path(frame_dir)
    parent = frame_dir.parent.parent if frame_dir.parent.name == "images" else frame_dir.parent
    return parent / f"{frame_dir.name}.json"


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, DetectorConfig]:
    parser = argparse.ArgumentParser(description="Detect 2D keypoints (MediaPipe Pose) in a folder of frames.")
    parser.add_argument("frame_dir", type=Path, metavar="FRAME_DIR", help="frames of one video (sorted by name)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output JSON (default: <root>/<video>.json for <root>/images/<video>/)")
    add_dataclass_arguments(parser, DetectorConfig, "detector")
    ns = parser.parse_args(argv)
    return ns, config_from_namespace(DetectorConfig, ns)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    ns, cfg = parse_args(argv)
    try:
        data = detect_frame_dir(ns.frame_dir, cfg)
    except (FileNotFoundError, ImportError) as err:
        logger.error("%s", err)
        return 1
    out = ns.out or default_output(ns.frame_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_keypoints_json(out, data)
    logger.info("wrote %s", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
