"""The embedded MediaPipe detector (datasets/detector.py): window search, landmark conversion, keypoint NMS, and real
photographs (one person in each single-person photo, at least five in the group photo)."""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from datasets import detector
from datasets.detector import (
    Detection,
    DetectorConfig,
    PoseDetector,
    is_duplicate,
    is_plausible,
    keypoint_nms,
    landmarks_to_keypoints,
    largest_person,
    make_detection,
    search_windows,
)
from tests.fixtures_real import real_photo
from utils.keypoints import read_keypoints_json

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_images"
SINGLE = ["baseball_flickr.jpg", "fencing_3dpw_crop.jpg", "lunge_pexels.jpg"]
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"real photographs not found at {REAL}")

# A standing person in MediaPipe's 33-landmark order, x in [-0.2, 0.2] and y in [-0.5, 0.5] of its height.
_TEMPLATE = np.array([
    [0.0, -0.45], [0.02, -0.47], [0.03, -0.47], [0.04, -0.47], [-0.02, -0.47], [-0.03, -0.47], [-0.04, -0.47],
    [0.06, -0.46], [-0.06, -0.46], [0.02, -0.42], [-0.02, -0.42], [0.12, -0.30], [-0.12, -0.30], [0.16, -0.10],
    [-0.16, -0.10], [0.18, 0.05], [-0.18, 0.05], [0.19, 0.08], [-0.19, 0.08], [0.18, 0.08], [-0.18, 0.08],
    [0.17, 0.07], [-0.17, 0.07], [0.08, 0.05], [-0.08, 0.05], [0.08, 0.27], [-0.08, 0.27], [0.08, 0.47],
    [-0.08, 0.47], [0.07, 0.50], [-0.07, 0.50], [0.10, 0.50], [-0.10, 0.50],
])


ALL = slice(None)


def person(cx: float, cy: float, height: float, conf: float = 0.9, visible: slice = ALL) -> Detection:
    kps = np.zeros((33, 3))
    kps[:, :2] = _TEMPLATE * height + [cx, cy]
    kps[visible, 2] = conf
    return make_detection(kps)


def test_search_windows_by_hand() -> None:
    # W 100, H 60, scale 0.5 -> side 30, stride 15: x starts 0..60 plus 70 (flush right), y starts 0, 15, 30
    windows = search_windows(100, 60, (0.5,), 0.5)
    assert windows[0] == (0, 0, 100, 60)
    assert len(windows) == 1 + 6 * 3
    assert windows[1] == (0, 0, 30, 30) and windows[-1] == (70, 30, 100, 60)
    assert all(x1 - x0 == 30 and y1 - y0 == 30 for x0, y0, x1, y1 in windows[1:])


def test_landmarks_to_keypoints_maps_window_pixels_and_confidence() -> None:
    class Landmark(SimpleNamespace):
        def HasField(self, name: str) -> bool:  # noqa: N802 (protobuf's name)
            return hasattr(self, name)

    marks = [Landmark(x=0.5, y=0.5, visibility=0.8) for _ in range(33)]
    marks[1] = Landmark(x=0.5, y=0.5, visibility=0.8, presence=0.5)
    marks[2] = Landmark(x=1.2, y=0.5, visibility=0.9)  # extrapolated outside the window
    kps = landmarks_to_keypoints(marks, (10, 20, 110, 70))  # a 100 x 50 window at (10, 20)
    assert kps[0] == pytest.approx([60.0, 45.0, 0.8])  # 10 + 0.5 * 100, 20 + 0.5 * 50
    assert kps[1, 2] == pytest.approx(0.4)  # visibility x presence
    assert kps[2] == pytest.approx([130.0, 45.0, 0.0])


def test_keypoint_nms_keeps_people_and_drops_other_views() -> None:
    a = person(100, 200, 200)
    partial = person(102, 199, 200, conf=0.6, visible=slice(0, 17))  # upper body of a, from another window
    part_view = person(100, 250, 60, conf=0.95)  # a small body inside a's box (a tile's limb view)
    b = person(400, 200, 200, conf=0.8)  # 1.5 box sides to the right
    assert is_duplicate(partial, a, 0.1) and is_duplicate(part_view, a, 0.1) and not is_duplicate(b, a, 0.1)
    kept = keypoint_nms([partial, b, part_view, a], 0.1)
    assert [k is a or k is b for k in kept] == [True, True] and kept[0] is a  # best score first
    assert largest_person(kept) is a and largest_person([]) is None


def test_plausible_needs_joints_and_a_shoulder() -> None:
    legs = person(100, 200, 200, visible=slice(23, 33))  # hips to feet: 10 mapped joints, no shoulder
    assert is_plausible(person(100, 200, 200), 10) and not is_plausible(legs, 6)
    assert not is_plausible(person(100, 200, 200, visible=slice(0, 13)), 10)  # 7 mapped joints


def test_missing_mediapipe_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    with pytest.raises(ImportError, match="--no-deps mediapipe==0.10.21"):
        detector.import_mediapipe()


def _read_rgb(name: str) -> np.ndarray:
    return np.ascontiguousarray(cv2.imread(str(real_photo(name)))[:, :, ::-1])


@needs_real
@pytest.mark.parametrize("multi", [False, True])
def test_one_person_in_each_single_person_photo(multi: bool) -> None:
    images = {name: _read_rgb(name) for name in SINGLE}  # skipped, naming the file, when one is not there
    with PoseDetector(DetectorConfig(multi_person=multi)) as find:
        for name in SINGLE:
            image = images[name]
            people = find(image)
            assert len(people) == 1, (name, len(people))
            conf = people[0].keypoints[:, 2] > 0.5
            assert conf[[11, 12, 23, 24, 25, 26]].all(), name  # shoulders, hips, knees
            # the whole body: the box of the confident landmarks spans over a third of the photo's height (the
            # kneeling lifter fills 0.42 of his, the others over 0.6)
            assert people[0].side > 0.35 * image.shape[0], (name, people[0].side)


@needs_real
def test_at_least_five_people_in_the_group_photo() -> None:
    image = _read_rgb("group_unsplash.jpg")
    with PoseDetector(DetectorConfig(multi_person=True, search_every=2), video=True) as find:
        people = find(image)  # frame 0 of a sequence: the tiled search
        tracked = find(image)  # frame 1: windows around the people of frame 0 only
    assert len(people) >= 5 and len(tracked) == len(people)
    hips = np.array([p.keypoints[[23, 24], :2].mean(axis=0) for p in people])
    gaps = np.linalg.norm(hips[:, None] - hips[None], axis=2) + np.eye(len(hips)) * 1e9
    assert gaps.min() > 50.0  # distinct people, not one person found twice


@needs_real
def test_cli_writes_a_keypoint_file_of_the_frames(tmp_path) -> None:
    frames = tmp_path / "images" / "clip"
    frames.mkdir(parents=True)
    photo = cv2.imread(str(real_photo("baseball_flickr.jpg")))
    for i in range(3):
        cv2.imwrite(str(frames / f"{i + 1:06d}.png"), photo)
    assert detector.main([str(frames)]) == 0
    data = read_keypoints_json(tmp_path / "clip.json")  # default: <root>/<video>.json next to images/
    assert data.layout == "mediapipe33" and [f.image for f in data.frames] == ["000001.png", "000002.png",
                                                                               "000003.png"]
    assert all(len(f.people) == 1 for f in data.frames)
    assert detector.main([str(tmp_path / "absent")]) == 1
