"""The detector's world landmarks through the internet path: keypoint JSON -> track npz -> stream item -> frame."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

import process_data
from datasets.internet import WORLD_KEY, InternetStream
from pipelines.passes import frame_of
from utils.keypoints import FrameKeypoints, KeypointsFile, PersonKeypoints, read_keypoints_json, write_keypoints_json


def _person(frame: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(frame)
    kps = np.column_stack([rng.uniform(200, 500, 33), rng.uniform(100, 500, 33), np.full(33, 0.9)])
    world = np.column_stack([rng.normal(0, 0.3, (33, 3)), np.full(33, 0.8)])
    return kps, world


def test_world_landmarks_reach_the_frame(tmp_path: Path) -> None:
    frames, worlds = [], []
    (tmp_path / "images" / "clip").mkdir(parents=True)
    for f in range(3):
        kps, world = _person(f)
        worlds.append(world)
        # the third frame's person comes from a detector that gave no world landmarks
        frames.append(FrameKeypoints(f"{f + 1:06d}.png", [PersonKeypoints(kps, None, world if f < 2 else None)]))
        cv2.imwrite(str(tmp_path / "images" / "clip" / f"{f + 1:06d}.png"), np.zeros((600, 700, 3), np.uint8))
    write_keypoints_json(tmp_path / "clip.json", KeypointsFile("mediapipe33", 10.0, frames))
    back = read_keypoints_json(tmp_path / "clip.json")
    np.testing.assert_allclose(back.frames[0].people[0].world, worlds[0], atol=1e-5)
    assert back.frames[2].people[0].world is None
    assert process_data.main(["--dataset", "internet", "--root", str(tmp_path), "--format", "dynaboa"]) == 0
    with np.load(tmp_path / "clip_0.npz") as data:
        stored = data[WORLD_KEY]
    assert stored.shape == (3, 33, 4)
    np.testing.assert_allclose(stored[1], worlds[1], atol=1e-5)
    assert np.isnan(stored[2]).all()
    stream = InternetStream(tmp_path, 64)
    item = stream[0]
    assert item.landmarks.shape == (33, 4)
    frame = frame_of(item, torch.device("cpu"))
    assert frame.landmarks.shape == (1, 33, 4) and torch.allclose(frame.landmarks[0], torch.tensor(worlds[0]).float(),
                                                                  atol=1e-5)


def test_tracks_without_world_landmarks_give_frames_without_them(tmp_path: Path) -> None:
    (tmp_path / "images" / "clip").mkdir(parents=True)
    kps, _ = _person(0)
    cv2.imwrite(str(tmp_path / "images" / "clip" / "000001.png"), np.zeros((600, 700, 3), np.uint8))
    write_keypoints_json(tmp_path / "clip.json",
                         KeypointsFile("mediapipe33", 10.0, [FrameKeypoints("000001.png", [PersonKeypoints(kps)])]))
    assert process_data.main(["--dataset", "internet", "--root", str(tmp_path), "--format", "dynaboa"]) == 0
    with np.load(tmp_path / "clip_0.npz") as data:
        assert WORLD_KEY not in data
    assert frame_of(InternetStream(tmp_path, 64)[0], torch.device("cpu")).landmarks is None
