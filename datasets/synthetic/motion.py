"""Procedural human motion: SMPL axis-angle poses and root translation at 30 fps.

A sequence strings several motion families (`datasets.synthetic.motion_families`) together with raised-cosine
cross-fades, adds slow smooth noise ("idle life"), soft-clips every angle to anatomical limits and integrates heading
and floor position, optionally steering back into a circular arena (Human3.6M subjects walk in circles in a small
capture volume). Root orientation is `Ry(heading) @ R(pelvis angles)` in a y-up world.

The vertical translation returned here is only the families' lift (bounce, hops) relative to standing; grounding
the feet of a particular body on the floor is done by the world generator, which knows the body.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from datasets.synthetic.motion_families import (
    FAMILIES,
    FPS,
    JOINT_LIMITS,
    NUM_JOINTS,
    PELVIS,
    Channels,
    Style,
    ease,
    smooth_noise,
)


@dataclass(frozen=True)
class Motion:
    """A generated motion."""

    poses: np.ndarray  # [N, 72] SMPL axis-angle, root orientation in the (y-up) world, float64
    trans: np.ndarray  # [N, 3] root translation in metres (x, lift, z), float64
    segments: tuple[str, ...]  # family of each segment, in order


def sample_style(family: str, rng: np.random.Generator) -> Style:
    """A random style for `family` (rhythm from the family's range; the rest shared)."""
    lo, hi = FAMILIES[family][1]
    return Style(freq=rng.uniform(lo, hi), amp=rng.uniform(0.75, 1.15), phase=rng.uniform(0, 2 * np.pi),
                 side=float(rng.choice((-1.0, 1.0))), lean=rng.uniform(-0.04, 0.12), speed=rng.uniform(0.85, 1.15))


def _segment_weights(n: int, n_segments: int, rng: np.random.Generator, blend: float) -> np.ndarray:
    """[K, n] partition of unity: K segments of random length, raised-cosine cross-fades of `blend` frames."""
    cuts = np.sort(rng.uniform(0.0, 1.0, n_segments - 1)) if n_segments > 1 else np.zeros(0)
    # spread the cuts so that every segment is at least one cross-fade long
    min_len = min(blend, n / n_segments) / n
    cuts = np.arange(1, n_segments) * min_len + cuts * (1.0 - n_segments * min_len)
    frames = np.arange(n)
    steps = [np.ones(n)] + [
        ease(np.clip((frames - c * n) / blend + 0.5, 0.0, 1.0)) for c in cuts
    ] + [np.zeros(n)]
    return np.stack([steps[k] - steps[k + 1] for k in range(n_segments)])


def _apply_limits(euler: np.ndarray, sharpness: float = 25.0) -> np.ndarray:
    """Soft-clip every angle into JOINT_LIMITS (a softplus knee `1/sharpness` rad wide keeps it smooth)."""
    lo, hi = JOINT_LIMITS[None, :, :, 0], JOINT_LIMITS[None, :, :, 1]
    out = lo + np.logaddexp(0.0, sharpness * (euler - lo)) / sharpness
    return hi - np.logaddexp(0.0, sharpness * (hi - out)) / sharpness


def _integrate_root(
    ch: Channels, start: np.ndarray, heading0: float, arena_radius: float | None, side: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Heading [N] and floor position [N, 2] (x, z) from the velocities, steering back into the arena if given."""
    n = len(ch.forward)
    heading, pos = np.empty(n), np.empty((n, 2))
    h, xz = heading0, np.asarray(start, dtype=np.float64).copy()
    for i in range(n):
        yaw = ch.yaw_rate[i]
        if arena_radius is not None:
            dist = float(np.hypot(*xz))
            pull = ease(np.clip((dist - 0.5 * arena_radius) / (0.5 * arena_radius), 0.0, 1.0))
            to_center = np.arctan2(-xz[0], -xz[1])  # heading h faces (sin h, cos h) in (x, z)
            moving = min(1.0, (abs(ch.forward[i]) + abs(ch.lateral[i])) / 0.5)
            diff = to_center - h  # the (1 - cos) term breaks the tie of walking straight away from the centre
            yaw += 2.5 * pull * moving * (np.sin(diff) + 0.5 * side * (1.0 - np.cos(diff)))
        h += yaw / FPS
        c, s = np.cos(h), np.sin(h)
        xz += np.array([c * ch.lateral[i] + s * ch.forward[i], -s * ch.lateral[i] + c * ch.forward[i]]) / FPS
        heading[i], pos[i] = h, xz
    return heading, pos


def _euler_to_rotmat(euler: np.ndarray) -> np.ndarray:
    """[..., 3] (x, y, z) angles -> [..., 3, 3] as Ry @ Rx @ Rz (extrinsic z, then x, then y)."""
    flat = euler.reshape(-1, 3)
    rot = Rotation.from_euler("zxy", flat[:, [2, 0, 1]])  # lower-case: extrinsic axes, applied z, x, y
    return rot.as_matrix().reshape(*euler.shape[:-1], 3, 3)


def generate_motion(
    families: Sequence[str],
    n_frames: int,
    rng: np.random.Generator,
    *,
    n_segments: int = 1,
    blend_seconds: float = 1.0,
    arena_radius: float | None = None,
    start: Sequence[float] = (0.0, 0.0),
    heading0: float | None = None,
    noise_amp: float = 0.04,
) -> Motion:
    """A motion of `n_segments` segments, each a family drawn from `families`, at 30 fps.

    Args:
        families: names from FAMILIES to draw segments from.
        n_frames: N.
        rng: the only source of randomness.
        n_segments: segments cross-faded over `blend_seconds`.
        arena_radius: metres; steer travelling families back inside this circle around the origin.
        start: initial (x, z) floor position in metres.
        heading0: initial heading (radians about +y); random when None.
        noise_amp: radians of slow idle noise on every joint angle.
    Returns:
        Motion with poses [N, 72] and trans [N, 3] (x, lift, z) in a y-up world.
    """
    assert n_frames > 1 and n_segments >= 1, (n_frames, n_segments)
    unknown = set(families) - set(FAMILIES)
    assert not unknown, f"unknown motion families {sorted(unknown)}"
    names = tuple(str(f) for f in rng.choice(list(families), size=n_segments))
    t = np.arange(n_frames) / FPS
    weights = _segment_weights(n_frames, n_segments, rng, blend_seconds * FPS)
    total = None
    for name, w in zip(names, weights):
        style = sample_style(name, rng)
        ch = FAMILIES[name][0](t, style, rng)
        ch.euler[:, PELVIS, 0] += style.lean
        total = ch.scaled(w) if total is None else total + ch.scaled(w)
    total.euler += smooth_noise(rng, n_frames, NUM_JOINTS * 3, 0.6 * FPS, noise_amp).reshape(-1, NUM_JOINTS, 3)
    euler = _apply_limits(total.euler)
    h0 = rng.uniform(-np.pi, np.pi) if heading0 is None else heading0
    side = float(rng.choice((-1.0, 1.0)))
    heading, floor = _integrate_root(total, np.asarray(start, dtype=np.float64), h0, arena_radius, side)
    rotmats = _euler_to_rotmat(euler)  # [N, 24, 3, 3]
    rotmats[:, PELVIS] = Rotation.from_euler("y", heading[:, None]).as_matrix() @ rotmats[:, PELVIS]
    poses = Rotation.from_matrix(rotmats.reshape(-1, 3, 3)).as_rotvec().reshape(n_frames, NUM_JOINTS * 3)
    trans = np.stack((floor[:, 0], total.lift, floor[:, 1]), axis=1)
    return Motion(poses=poses.astype(np.float64), trans=trans.astype(np.float64), segments=names)
