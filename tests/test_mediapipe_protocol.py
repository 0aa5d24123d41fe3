"""The MediaPipe 2D protocol: the detector step reads only images and resumes; matching keeps misses as misses; the
3DPW stream carries the keypoints, the boxes and the world landmarks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from datasets import detector as detector_module
from datasets.detector import Detection
from datasets.mediapipe_protocol import carried_boxes
from datasets.preprocess import mediapipe3dpw
from datasets.pw3d import MEDIAPIPE_KEYPOINTS, PROTOCOL_NAMES, PW3DStream, list_track_files
from models.teacher3d import MP_BODY


class FakeDetector:
    """Stands in for MediaPipe: replays `script[(sequence frame count, i)]` detections, counts the frames it saw."""

    frames_seen = 0
    script: dict = {}

    def __init__(self, cfg=None, video=False):
        assert video  # the internet path's default: one person, video mode
        self.i = 0

    def __call__(self, image):
        FakeDetector.frames_seen += 1
        found = FakeDetector.script.get(self.i)
        self.i += 1
        return [] if found is None else [found]

    def __enter__(self):
        self.i = 0
        return self

    def __exit__(self, *exc):
        return None


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(detector_module, "PoseDetector", FakeDetector)
    FakeDetector.frames_seen, FakeDetector.script = 0, {}
    return FakeDetector


def _images_only(world: Path, tmp_path: Path) -> Path:
    """A data root with the frames of the tiny world and nothing else (no track file, no ground truth)."""
    root = tmp_path / "root"
    (root / "3dpw").mkdir(parents=True)
    (root / "3dpw" / "imageFiles").symlink_to(world / "3dpw" / "imageFiles")
    return root


def test_detection_step_reads_only_images_and_resumes(tiny_world, tmp_path, fake):
    root = _images_only(tiny_world, tmp_path)
    fake.script = {0: Detection(np.ones((33, 3)), 1.0, np.ones((33, 4)))}
    assert mediapipe3dpw.main(["--data-root", str(root), "--detect-only"]) == 0
    total = sum(len(list(p.iterdir())) for p in (root / "3dpw" / "imageFiles").iterdir())
    assert fake.frames_seen == total
    cache = sorted((root / "mediapipe_cache").iterdir())
    assert [p.stem for p in cache] == sorted(p.name for p in (root / "3dpw" / "imageFiles").iterdir())
    with np.load(cache[0]) as data:
        assert data["found"][0] and not data["found"][1:].any() and data["world"].shape[1:] == (33, 4)
    fake.frames_seen = 0
    assert mediapipe3dpw.main(["--data-root", str(root), "--detect-only"]) == 0
    assert fake.frames_seen == 0  # everything cached: nothing detected again
    cache[1].unlink()  # an interrupted run: that sequence is detected again, the others are kept
    assert mediapipe3dpw.main(["--data-root", str(root), "--detect-only"]) == 0
    assert fake.frames_seen == len(list((root / "3dpw" / "imageFiles" / cache[1].stem).iterdir()))


def _root_with_world(world: Path, tmp_path: Path) -> Path:
    root = tmp_path / "full"
    root.mkdir()
    for entry in world.iterdir():
        (root / entry.name).symlink_to(entry)
    return root


def test_matching_keeps_misses_and_the_stream_carries_landmarks(tiny_world, tmp_path, fake):
    root = _root_with_world(tiny_world, tmp_path)
    first = list_track_files(root / "dataset_extras")[0]
    with np.load(first) as data:  # the test's stand-in detector sees the first track's person on even frames
        j2d, names = data["j2d"], [Path(str(n)).name for n in data["imgname"]]
    seq = Path(str(np.load(first)["imgname"][0])).parent.name
    frames = sorted(p.name for p in (root / "3dpw" / "imageFiles" / seq).iterdir())
    for k, name in enumerate(names):
        kps = np.zeros((33, 3))
        kps[list(MP_BODY)] = j2d[k, 25:37]
        kps[list(MP_BODY), 2] = 0.9
        if k % 2 == 1:
            kps[:, :2] += 5000.0  # a detection of something else: far from this person
        fake.script[frames.index(name)] = Detection(kps, 1.0, np.full((33, 4), 0.5))
    assert mediapipe3dpw.main(["--data-root", str(root)]) == 0
    with np.load(root / "dataset_extras_mediapipe" / first.name) as data:
        matched = data["matched"]
        assert matched.tolist() == [k % 2 == 0 for k in range(len(names))]
        assert not data["mp_j2d"][~matched].any() and not data["mp_world"][~matched].any()
    stream = PW3DStream(root / "dataset_extras", root / "3dpw", 64, PROTOCOL_NAMES["MediaPipe 2D"])
    assert MEDIAPIPE_KEYPOINTS == "mp_j2d"
    assert stream[0].landmarks is not None and stream[0].landmarks.shape == (33, 4)
    assert stream[1].landmarks is None and float(stream[1].keypoints[:, 2].sum()) == 0  # a miss stays a miss
    assert float(stream[0].keypoints[25:37, 2].min()) == 1.0
    np.testing.assert_allclose(stream.cols["center"][1], stream.cols["center"][0])  # its crop: the last box


def test_boxes_of_misses_are_carried_from_the_last_detection():
    center = np.array([[1.0, 1.0], [0, 0], [3.0, 3.0], [0, 0]])
    scale = np.array([1.0, 0, 3.0, 0])
    valid = np.array([False, False, True, False])
    c, s = carried_boxes(center, scale, valid, np.zeros((4, 2)), np.ones(4))
    assert s.tolist() == [3.0, 3.0, 3.0, 3.0] and c[3].tolist() == [3.0, 3.0]
    c, s = carried_boxes(center, scale, np.zeros(4, bool), np.full((4, 2), 7.0), np.full(4, 2.0))
    assert s.tolist() == [2.0] * 4 and c[0].tolist() == [7.0, 7.0]


def test_a_detection_with_left_and_right_confused_is_still_the_persons():
    rng = np.random.default_rng(0)
    gt = np.zeros((1, 49, 3))
    gt[0, 25:37, :2] = rng.uniform(0, 400, (12, 2))
    gt[0, 25:37, 2] = 1.0
    det = np.zeros((1, 33, 3))
    det[0, list(MP_BODY), :2] = gt[0, 25:37, :2]
    det[0, list(MP_BODY), 2] = 0.9
    scale = np.array([2.0])
    assert mediapipe3dpw.match_errors(det, gt, scale)[0] < 1e-9
    confused = det[:, mediapipe3dpw.MIRROR]
    assert mediapipe3dpw._match_errors(confused, gt, scale)[0] > 0.2
    assert mediapipe3dpw.match_errors(confused, gt, scale)[0] < 1e-9
