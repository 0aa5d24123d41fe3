"""Tests of the procedural motion library (datasets/synthetic/motion.py, motion_families.py)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from datasets.synthetic.motion import FPS, _apply_limits, _euler_to_rotmat, generate_motion
from datasets.synthetic.motion_families import FAMILIES, JOINT_LIMITS, L_ELBOW, L_KNEE, R_ELBOW, R_KNEE

MAX_ANGULAR_SPEED = 20.0  # rad/s: a sprinting knee peaks near 15 rad/s; a pop of 90 degrees in a frame is 47
MAX_ANGULAR_ACCEL = 400.0  # rad/s^2: the same pop gives about 1400
MAX_ROOT_SPEED = 6.0  # m/s


def _rotmats(poses: np.ndarray) -> np.ndarray:
    return Rotation.from_rotvec(poses.reshape(-1, 3)).as_matrix().reshape(len(poses), 24, 3, 3)


def _angular_speed_and_accel(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame geodesic angular speed [N-1, 24] and the change of the frame-to-frame rotation [N-2, 24]."""
    rot = _rotmats(poses)
    delta = np.einsum("tjba,tjbc->tjac", rot[:-1], rot[1:])  # R_t^T R_{t+1}
    dd = np.einsum("tjba,tjbc->tjac", delta[:-1], delta[1:])

    def angle(m: np.ndarray) -> np.ndarray:
        return np.arccos(np.clip((np.trace(m, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0))

    return angle(delta) * FPS, angle(dd) * FPS**2


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_is_smooth_and_bounded(family: str) -> None:
    motion = generate_motion([family], 240, np.random.default_rng(3), arena_radius=2.0)
    assert motion.poses.shape == (240, 72) and motion.trans.shape == (240, 3)
    assert motion.poses.dtype == np.float64 and np.isfinite(motion.poses).all()
    speed, accel = _angular_speed_and_accel(motion.poses)
    assert speed.max() < MAX_ANGULAR_SPEED, (family, speed.max())
    assert accel.max() < MAX_ANGULAR_ACCEL, (family, accel.max())
    assert (np.linalg.norm(np.diff(motion.trans, axis=0), axis=1) * FPS).max() < MAX_ROOT_SPEED


def test_transitions_between_families_do_not_pop() -> None:
    motion = generate_motion(sorted(FAMILIES), 900, np.random.default_rng(5), n_segments=6)
    assert len(motion.segments) == 6
    speed, accel = _angular_speed_and_accel(motion.poses)
    assert speed.max() < MAX_ANGULAR_SPEED and accel.max() < MAX_ANGULAR_ACCEL, (speed.max(), accel.max())
    root_vel = np.diff(motion.trans, axis=0) * FPS
    assert (np.linalg.norm(np.diff(root_vel, axis=0), axis=1) * FPS).max() < 30.0  # m/s^2


def test_knees_and_elbows_stay_within_their_range() -> None:
    motion = generate_motion(sorted(FAMILIES), 1200, np.random.default_rng(7), n_segments=8)
    rot = _rotmats(motion.poses)
    for knee in (L_KNEE, R_KNEE):  # a hinge about x: angle = atan2(R[2, 1], R[1, 1])
        flex = np.arctan2(rot[:, knee, 2, 1], rot[:, knee, 1, 1])
        assert flex.min() > -0.1 and flex.max() < 2.55, (flex.min(), flex.max())
    left = np.arctan2(rot[:, L_ELBOW, 0, 2], rot[:, L_ELBOW, 0, 0])  # a hinge about y
    right = np.arctan2(rot[:, R_ELBOW, 0, 2], rot[:, R_ELBOW, 0, 0])
    assert left.min() > -2.65 and left.max() < 0.1, (left.min(), left.max())
    assert right.max() < 2.65 and right.min() > -0.1, (right.min(), right.max())


def test_soft_limits_by_hand() -> None:
    euler = np.zeros((1, 24, 3))
    euler[0, L_KNEE, 0] = -1.0  # far below the knee's lower limit -0.05
    euler[0, L_ELBOW, 1] = -1.0  # well inside (-2.6, 0.05)
    out = _apply_limits(euler)
    # -0.05 + log(1 + e^(25 * -0.95)) / 25 = -0.05 (+5e-11); upper knee at 2.5 is 2.55 away: no effect
    assert out[0, L_KNEE, 0] == pytest.approx(-0.05, abs=1e-6)
    # 1/25 * log(1 + e^(-25 * 1.05)) is 1.6e-13 from the lower side; the upper side is 1.05 away: 1e-13
    assert out[0, L_ELBOW, 1] == pytest.approx(-1.0, abs=1e-9)
    assert JOINT_LIMITS[R_ELBOW, 1].tolist() == [-0.05, 2.6]  # mirrored from the left (-2.6, 0.05)


def test_angle_convention_by_hand() -> None:
    euler = np.zeros((3, 3))
    euler[0] = [-np.pi / 2, 0.0, 0.0]  # hip x < 0: the thigh (pointing down) swings forward
    euler[1] = [0.0, 0.0, -np.pi / 2]  # left shoulder z < 0: the arm (pointing +x) goes down
    euler[2] = [-np.pi / 2, 0.0, -np.pi / 2]  # z first, then x: the lowered arm swings forward
    rot = _euler_to_rotmat(euler)
    np.testing.assert_allclose(rot[0] @ [0, -1, 0], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(rot[1] @ [1, 0, 0], [0, -1, 0], atol=1e-12)
    np.testing.assert_allclose(rot[2] @ [1, 0, 0], [0, 0, 1], atol=1e-12)


def test_same_seed_same_motion_other_seed_other_motion() -> None:
    a = generate_motion(["walk", "run"], 90, np.random.default_rng(11), n_segments=2)
    b = generate_motion(["walk", "run"], 90, np.random.default_rng(11), n_segments=2)
    c = generate_motion(["walk", "run"], 90, np.random.default_rng(12), n_segments=2)
    np.testing.assert_array_equal(a.poses, b.poses)
    np.testing.assert_array_equal(a.trans, b.trans)
    assert not np.allclose(a.poses, c.poses)


def test_arena_keeps_walkers_inside() -> None:
    for seed in range(3):
        motion = generate_motion(["walk"], 1800, np.random.default_rng(seed), arena_radius=2.0)
        assert np.hypot(motion.trans[:, 0], motion.trans[:, 2]).max() < 3.0
        assert np.hypot(motion.trans[-1, 0] - motion.trans[0, 0], motion.trans[-1, 2] - motion.trans[0, 2]) < 6.0


def test_root_heading_follows_travel_direction() -> None:
    """A walker moves along its facing direction: the body's +z axis (rotated by the root) ~ velocity."""
    motion = generate_motion(["walk"], 120, np.random.default_rng(2), heading0=0.3, noise_amp=0.0)
    forward = Rotation.from_rotvec(motion.poses[:, :3]).apply([0.0, 0.0, 1.0])[:-1]
    vel = np.diff(motion.trans, axis=0)
    vel[:, 1] = 0.0
    cos = (forward[:, [0, 2]] * vel[:, [0, 2]]).sum(1) / np.linalg.norm(vel[:, [0, 2]], axis=1)
    assert np.median(cos) > 0.9
