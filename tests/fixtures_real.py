"""Builders of small stand-ins for real data (videos, Human3.6M in its official layout, detector outputs).

No licensed data: every file is generated, with values simple enough to check by hand.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

FPS = 12.5
SIZE = (64, 48)  # (width, height) of the test videos
REAL_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_images"


def real_photo(name: str) -> Path:
    """The real photograph `name` of `../shared/data/real_images/` (its README lists them); when that file is not
    there (the folder absent, or other photos in it) the test is skipped, naming the missing file."""
    import pytest

    path = REAL_IMAGES / name
    if not path.is_file():
        pytest.skip(f"real photograph {path} not found (the photos this test needs are listed in "
                    f"{REAL_IMAGES / 'README.md'})")
    return path


def frame_image(index: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    """A BGR frame whose mean grey level encodes `index` (10 * index + 20) and whose bar moves with it."""
    width, height = size
    img = np.full((height, width, 3), 20 + 10 * index, np.uint8)
    img[: height // 4, (4 * index) % width:, 1] = 255
    return img


def frame_level(img: np.ndarray) -> int:
    """Recover the index `frame_image` encoded (from the lower three quarters, which the bar never touches)."""
    return int(round((float(img[img.shape[0] // 4:].mean()) - 20) / 10))


def write_video(path: Path, count: int, fourcc: str = "MJPG", fps: float = FPS,
                size: tuple[int, int] = SIZE) -> Path:
    """Write `count` frames of `frame_image` with OpenCV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} to {path}"
    for i in range(count):
        writer.write(frame_image(i, size))
    writer.release()
    return path


def truncate_copy(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    """Copy the first `fraction` of the bytes of `src` (an interrupted download)."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


# --- Human3.6M ------------------------------------------------------------------------------------------------------


def write_cdf_pose(path: Path, poses: np.ndarray) -> None:
    """Write poses [N, 32, d] as the `Pose` variable (1, N, 32*d) of a CDF file, as the official files hold it."""
    from cdflib.cdfwrite import CDF

    path.parent.mkdir(parents=True, exist_ok=True)
    flat = poses.reshape(1, poses.shape[0], -1).astype(np.float32)
    cdf = CDF(str(path), cdf_spec={"Majority": "Row_major"}, delete=True)
    cdf.write_var({"Variable": "Pose", "Data_Type": CDF.CDF_FLOAT, "Num_Elements": 1, "Rec_Vary": True,
                   "Dim_Sizes": list(flat.shape[1:])}, var_data=flat)
    cdf.close()


def h36m_poses(count: int, seed: int, focal: float = 100.0, size: tuple[int, int] = (160, 120)):
    """Random 32-joint poses: 3D [N, 32, 3] mm in the camera frame (about 5 m away) and their projections
    [N, 32, 2] pixels; joints 11 and 24 duplicate 0 and 13 as in the official files; the head-top site (15) is
    800 mm above the pelvis (-y is up) and joint 14 is 600 mm above it."""
    rng = np.random.default_rng(seed)
    pelvis = np.array([0.0, 0.0, 5000.0]) + rng.uniform(-200, 200, (count, 1, 3))
    pose3d = pelvis + rng.uniform(-500, 500, (count, 32, 3))
    pose3d[:, 0] = pose3d[:, 11] = pelvis[:, 0]
    pose3d[:, 24] = pose3d[:, 13]
    pose3d[:, 15] = pelvis[:, 0] + [0.0, -800.0, 0.0]
    pose3d[:, 14] = pelvis[:, 0] + [0.0, -600.0, 0.0]
    center = np.array(size, dtype=np.float64) / 2
    pose2d = focal * pose3d[..., :2] / pose3d[..., 2:] + center
    return pose3d, pose2d


def write_h36m_recording(root: Path, subject: str, action: str, camera: str, count: int, seed: int,
                         video_frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One recording in the official layout: video (mp4v) + D2_Positions + D3_Positions_mono. Returns
    (pose3d [N, 32, 3] mm, pose2d [N, 32, 2] px)."""
    pose3d, pose2d = h36m_poses(count, seed)
    features = root / subject / "MyPoseFeatures"
    write_cdf_pose(features / "D3_Positions_mono" / f"{action}.{camera}.cdf", pose3d)
    write_cdf_pose(features / "D2_Positions" / f"{action}.{camera}.cdf", pose2d)
    write_video(root / subject / "Videos" / f"{action}.{camera}.mp4", video_frames or count, "mp4v", 50.0, (160, 120))
    return pose3d, pose2d


# --- 2D detections --------------------------------------------------------------------------------------------------

# A standing COCO-17 person, x in [-0.16, 0.16], y in [-0.45, 0.5] of its height (image y down).
COCO17_TEMPLATE = np.array([
    [0.0, -0.40], [0.03, -0.43], [-0.03, -0.43], [0.06, -0.45], [-0.06, -0.45],  # nose, eyes, ears
    [0.12, -0.30], [-0.12, -0.30], [0.15, -0.10], [-0.15, -0.10], [0.16, 0.05], [-0.16, 0.05],  # arms
    [0.08, 0.05], [-0.08, 0.05], [0.08, 0.27], [-0.08, 0.27], [0.08, 0.50], [-0.08, 0.50],  # legs
])


def coco17_person(cx: float, cy: float, height: float, conf: float = 0.9) -> np.ndarray:
    """[17, 3] keypoints of the template scaled to `height` px around (cx, cy)."""
    kps = np.ones((17, 3)) * conf
    kps[:, :2] = COCO17_TEMPLATE * height + [cx, cy]
    return kps


def alphapose_entry(frame: int, kps: np.ndarray, score: float = 3.0, idx: object | None = None) -> dict:
    """One AlphaPose result for 0-based `frame` (image `%06d.png` from 1)."""
    x0, y0 = kps[:, :2].min(axis=0)
    x1, y1 = kps[:, :2].max(axis=0)
    entry = {"image_id": f"{frame + 1:06d}.png", "category_id": 1, "keypoints": kps.reshape(-1).tolist(),
             "score": score, "box": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]}
    if idx is not None:
        entry["idx"] = idx
    return entry
