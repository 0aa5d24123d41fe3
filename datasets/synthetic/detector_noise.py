"""A documented model of a 2D keypoint detector's errors, to make 3DPW-style `poses2d` (OpenPose COCO-18).

3DPW's `poses2d` are OpenPose detections, not ground truth; the synthetic target domain writes the same kind of
estimate, derived from the exact projected joints by this model (one call per person and sequence):

1. Visibility (`joint_visibility`, from the renderer's label and depth images): a joint outside the image, or whose
   pixel (within 2 px) shows no pixel of this person (another person or an occluder covers it), is missing:
   (0, 0, 0). A joint more than `self_depth` metres behind the visible surface of its own body is self-occluded
   (an arm behind the torso); face points (nose, eyes, ears) use the tighter `face_depth` and are then missing too
   (OpenPose does not report the far ear), body joints stay but with more jitter and lower confidence.
2. Jitter: Gaussian, standard deviation `jitter` x the person's size (diagonal of the tight box of the 18 true
   keypoints, pixels) x a per-joint factor (0.6 face, 0.8 neck, 1.0 shoulders and hips, 1.2 elbows and knees,
   1.6 wrists and ankles), doubled when self-occluded; AR(1)-correlated over frames with coefficient
   `temporal_corr`, so it flickers like a detector rather than like white noise.
3. Misses: a visible joint is dropped with probability `miss_rate`.
4. Outliers: with probability `outlier_rate` per joint, the point moves 15-40 % of the size in a random direction
   and gets a low confidence (0.1-0.5).
5. Left/right swaps: with probability `swap_rate` per frame, every left joint trades places with its right twin
   (positions and confidences), the classic failure on a person seen from behind.
6. Confidence of a detected joint: N(0.78, 0.10) clipped to [0.05, 0.98], x 0.55 when self-occluded.
7. A frame with fewer than `min_joints` detected joints is reported as not detected at all (all zeros), as 3DPW
   provides poses2d "only if at least 6 joints were detected correctly".

Output layout: [N, 3, 18] float64 rows (x, y, confidence), joints in OpenPose COCO-18 order (nose, neck, right
shoulder, elbow, wrist, left shoulder, elbow, wrist, right hip, knee, ankle, left hip, knee, ankle, right eye, left
eye, right ear, left ear), which are the BODY_25 slots [0..7, 9..18] of the 49-joint layout.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COCO18_FROM_J49 = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]  # OpenPose block of the 49
COCO18_FLIP = [0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16]
COCO18_FACE = np.array([0, 14, 15, 16, 17])
# per-joint jitter factor: face 0.6, neck 0.8, shoulders/hips 1.0, elbows/knees 1.2, wrists/ankles 1.6
JOINT_JITTER = np.array([0.6, 0.8, 1.0, 1.2, 1.6, 1.0, 1.2, 1.6, 1.0, 1.2, 1.6, 1.0, 1.2, 1.6, 0.6, 0.6, 0.6, 0.6])
NUM_COCO18 = 18


@dataclass(frozen=True)
class DetectorNoise:
    """Parameters of the detector model (see the module docstring)."""

    jitter: float = 0.012  # jitter standard deviation as a fraction of the person's size
    temporal_corr: float = 0.6  # AR(1) coefficient of the jitter between frames
    miss_rate: float = 0.03  # probability that a visible joint is not detected
    outlier_rate: float = 0.01  # probability per joint of a gross error
    swap_rate: float = 0.02  # probability per frame of a whole-body left/right swap
    self_depth: float = 0.2  # metres behind the visible surface that makes a body joint self-occluded
    face_depth: float = 0.06  # the same for nose, eyes and ears
    min_joints: int = 6  # fewer detected joints: the frame counts as not detected
    radius: int = 2  # pixels searched around a joint for its person's label


def coco18_from_j49(points_j49: np.ndarray) -> np.ndarray:
    """The COCO-18 joints of the 49-joint layout: [..., 49, D] -> [..., 18, D]."""
    assert points_j49.shape[-2] == 49, points_j49.shape
    return points_j49[..., COCO18_FROM_J49, :]


def joint_visibility(
    points: np.ndarray, joint_depth: np.ndarray, labels: np.ndarray, depth: np.ndarray, person_label: int,
    noise: DetectorNoise = DetectorNoise(),
) -> tuple[np.ndarray, np.ndarray]:
    """Which joints of one person a detector can see in one frame.

    Args:
        points: [J, 2] projected joints, pixels (x, y).
        joint_depth: [J] camera-frame z of the joints, metres.
        labels: [H, W] int render labels (0 background, i + 1 for mesh i).
        depth: [H, W] rendered z-depth, metres (0 where nothing was rendered).
        person_label: this person's label value.
        noise: the model parameters (radius, depth margins).
    Returns:
        visible [J] bool (in the frame and not covered by another object) and self_occluded [J] bool (visible but
        more than the margin behind the person's own visible surface; face joints use `face_depth`).
    """
    assert points.ndim == 2 and points.shape[1] == 2 and joint_depth.shape == points.shape[:1], points.shape
    assert labels.shape == depth.shape, (labels.shape, depth.shape)
    height, width = labels.shape
    r = noise.radius
    visible = np.zeros(len(points), dtype=bool)
    self_occluded = np.zeros(len(points), dtype=bool)
    margin = np.full(len(points), noise.self_depth)
    if len(points) == NUM_COCO18:
        margin[COCO18_FACE] = noise.face_depth
    for j, (x, y) in enumerate(points):
        if not (0 <= x < width and 0 <= y < height) or joint_depth[j] <= 0:
            continue
        xi, yi = int(x), int(y)
        win = (slice(max(yi - r, 0), yi + r + 1), slice(max(xi - r, 0), xi + r + 1))
        mine = labels[win] == person_label
        if not mine.any():
            continue
        visible[j] = True
        self_occluded[j] = joint_depth[j] - depth[win][mine].min() > margin[j]
    return visible, self_occluded


def simulate_openpose(
    keypoints: np.ndarray, visible: np.ndarray, self_occluded: np.ndarray, image_size: tuple[int, int],
    rng: np.random.Generator, noise: DetectorNoise = DetectorNoise(),
) -> np.ndarray:
    """Detector-like COCO-18 keypoints of one person over N frames.

    Args:
        keypoints: [N, 18, 2] exact projected joints, pixels.
        visible, self_occluded: [N, 18] bool from `joint_visibility`.
        image_size: (width, height) pixels.
        rng: the only source of randomness.
        noise: the model parameters.
    Returns:
        [N, 3, 18] float64: rows x, y, confidence; a missing joint is (0, 0, 0).
    """
    n = keypoints.shape[0]
    assert keypoints.shape == (n, NUM_COCO18, 2), keypoints.shape
    assert visible.shape == (n, NUM_COCO18) and self_occluded.shape == (n, NUM_COCO18), visible.shape
    size = np.linalg.norm(keypoints.max(axis=1) - keypoints.min(axis=1), axis=1)  # [N] box diagonal, pixels
    sigma = noise.jitter * size[:, None] * JOINT_JITTER[None] * np.where(self_occluded, 2.0, 1.0)  # [N, 18]
    xy = keypoints + _ar1(rng, (n, NUM_COCO18, 2), noise.temporal_corr) * sigma[..., None]
    conf = np.clip(rng.normal(0.78, 0.10, (n, NUM_COCO18)), 0.05, 0.98) * np.where(self_occluded, 0.55, 1.0)
    outlier = rng.random((n, NUM_COCO18)) < noise.outlier_rate
    angle = rng.uniform(0, 2 * np.pi, (n, NUM_COCO18))
    jump = rng.uniform(0.15, 0.4, (n, NUM_COCO18)) * size[:, None]
    xy[outlier] += (jump[..., None] * np.stack((np.cos(angle), np.sin(angle)), -1))[outlier]
    conf[outlier] = rng.uniform(0.1, 0.5, int(outlier.sum()))
    face_hidden = np.zeros_like(self_occluded)
    face_hidden[:, COCO18_FACE] = self_occluded[:, COCO18_FACE]
    width, height = image_size
    inside = (xy[..., 0] >= 0) & (xy[..., 0] < width) & (xy[..., 1] >= 0) & (xy[..., 1] < height)
    detected = visible & ~face_hidden & inside & (rng.random((n, NUM_COCO18)) >= noise.miss_rate)
    out = np.concatenate((xy, conf[..., None]), axis=2) * detected[..., None]  # [N, 18, 3]
    swap = rng.random(n) < noise.swap_rate
    out[swap] = out[swap][:, COCO18_FLIP]
    out[detected.sum(axis=1) < noise.min_joints] = 0.0
    return np.ascontiguousarray(out.transpose(0, 2, 1))


def _ar1(rng: np.random.Generator, shape: tuple[int, ...], rho: float) -> np.ndarray:
    """Unit-variance AR(1) noise along the first axis with coefficient rho."""
    eps = rng.standard_normal(shape)
    out = np.empty(shape)
    out[0] = eps[0]
    scale = np.sqrt(1.0 - rho * rho)
    for t in range(1, shape[0]):
        out[t] = rho * out[t - 1] + scale * eps[t]
    return out
