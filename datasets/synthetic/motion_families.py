"""Motion families: time -> SMPL joint angles, travel velocity, turning rate and lift.

A family (walk, run, jumping jacks, squat, ...) maps time to joint angles with a random `Style` (rhythm, amplitude,
phase, leading side, lean, speed). `datasets.synthetic.motion` strings families into sequences.

Angle convention. Each joint's local rotation is built from three angles (x, y, z) as `R = Ry @ Rx @ Rz` in the
parent frame of SMPL's rest pose (x = the person's left, y = up, z = forward). Families are written for the left
side; right-side values mirror them (y and z angles change sign). With this convention:
hip x < 0 flexes the thigh forward, knee x > 0 bends the knee, shoulder z = -1.25 lowers the left arm from the
T-pose to the side, shoulder x < 0 then swings it forward, elbow y < 0 bends the left elbow, spine x > 0 bends
forward. `JOINT_LIMITS` gives the anatomical range of every angle.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

FPS = 30.0  # frames per second of every generated motion (3DPW's image rate)
NUM_JOINTS = 24

(PELVIS, L_HIP, R_HIP, SPINE1, L_KNEE, R_KNEE, SPINE2, L_ANKLE, R_ANKLE, SPINE3, L_FOOT, R_FOOT, NECK, L_COLLAR,
 R_COLLAR, HEAD, L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST, L_HAND, R_HAND) = range(NUM_JOINTS)
MIRROR = {L_HIP: R_HIP, L_KNEE: R_KNEE, L_ANKLE: R_ANKLE, L_FOOT: R_FOOT, L_COLLAR: R_COLLAR,
          L_SHOULDER: R_SHOULDER, L_ELBOW: R_ELBOW, L_WRIST: R_WRIST, L_HAND: R_HAND}

# Anatomical limits (radians) of the (x, y, z) angles, written for the left side / the spine.
_LIMITS_LEFT = {
    PELVIS: ((-0.6, 1.2), (-0.5, 0.5), (-0.4, 0.4)),
    L_HIP: ((-2.3, 0.7), (-0.6, 0.6), (-0.4, 0.9)),
    L_KNEE: ((-0.05, 2.5), (-0.1, 0.1), (-0.1, 0.1)),
    L_ANKLE: ((-0.7, 0.8), (-0.3, 0.3), (-0.3, 0.3)),
    L_FOOT: ((-0.4, 0.4), (-0.2, 0.2), (-0.2, 0.2)),
    SPINE1: ((-0.5, 0.8), (-0.5, 0.5), (-0.4, 0.4)),
    SPINE2: ((-0.5, 0.8), (-0.5, 0.5), (-0.4, 0.4)),
    SPINE3: ((-0.5, 0.8), (-0.5, 0.5), (-0.4, 0.4)),
    NECK: ((-0.6, 0.7), (-0.8, 0.8), (-0.4, 0.4)),
    HEAD: ((-0.6, 0.7), (-0.8, 0.8), (-0.4, 0.4)),
    L_COLLAR: ((-0.3, 0.3), (-0.3, 0.3), (-0.4, 0.4)),
    L_SHOULDER: ((-2.0, 1.0), (-1.0, 1.0), (-1.6, 1.5)),
    L_ELBOW: ((-0.3, 0.3), (-2.6, 0.05), (-0.3, 0.3)),
    L_WRIST: ((-0.6, 0.6), (-0.6, 0.6), (-0.6, 0.6)),
    L_HAND: ((-0.3, 0.3), (-0.3, 0.3), (-0.3, 0.3)),
}
ARMS_DOWN = 1.25  # shoulder z (left: negative) that lowers an arm from the T-pose to the side


def _limit_table() -> np.ndarray:
    """[24, 3, 2] (lo, hi) per joint and angle, the right side mirrored from the left."""
    table = np.zeros((NUM_JOINTS, 3, 2))
    for joint, lims in _LIMITS_LEFT.items():
        table[joint] = np.asarray(lims)
        if joint in MIRROR:
            mirrored = table[joint].copy()
            mirrored[1:] = -mirrored[1:, ::-1]  # y and z change sign: (lo, hi) -> (-hi, -lo)
            table[MIRROR[joint]] = mirrored
    return table


JOINT_LIMITS = _limit_table()


@dataclass(frozen=True)
class Style:
    """Random style of one family instance."""

    freq: float  # Hz, the family's main rhythm
    amp: float  # amplitude multiplier of the family's movement
    phase: float  # radians
    side: float  # +1 or -1: the leading side / turning direction
    lean: float  # radians of forward lean added to the pelvis
    speed: float  # travel-speed multiplier


@dataclass
class Channels:
    """What a family produces over N frames."""

    euler: np.ndarray  # [N, 24, 3] local (x, y, z) angles, radians
    forward: np.ndarray  # [N] m/s along the body's heading
    lateral: np.ndarray  # [N] m/s to the body's left
    yaw_rate: np.ndarray  # [N] rad/s, positive turns left (about +y)
    lift: np.ndarray  # [N] metres above standing

    def scaled(self, w: np.ndarray) -> Channels:
        """Every channel multiplied by per-frame weights w [N]."""
        return Channels(self.euler * w[:, None, None], self.forward * w, self.lateral * w, self.yaw_rate * w,
                        self.lift * w)

    def __add__(self, other: Channels) -> Channels:
        return Channels(self.euler + other.euler, self.forward + other.forward, self.lateral + other.lateral,
                        self.yaw_rate + other.yaw_rate, self.lift + other.lift)


# ------------------------------------------------------------------------------------------------------------------
# helpers shared by the families
# ------------------------------------------------------------------------------------------------------------------


def _rest(n: int) -> Channels:
    """Standing with the arms at the sides."""
    euler = np.zeros((n, NUM_JOINTS, 3))
    zeros = np.zeros(n)
    ch = Channels(euler, zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy())
    _lr(ch.euler, L_SHOULDER, 2, -ARMS_DOWN, -ARMS_DOWN)
    _lr(ch.euler, L_ELBOW, 1, -0.15, -0.15)
    _lr(ch.euler, L_KNEE, 0, 0.05, 0.05)
    return ch


def _lr(euler: np.ndarray, left: int, axis: int, val_left, val_right) -> None:
    """Add a left value and a right value given in left-side convention (mirrored for the right joint)."""
    sign = 1.0 if axis == 0 else -1.0
    euler[:, left, axis] += val_left
    euler[:, MIRROR[left], axis] += sign * np.asarray(val_right)


def _bump(x: np.ndarray, power: float = 2.0) -> np.ndarray:
    """Smooth map of x in [-1, 1] to [0, 1]: ((1 + x) / 2) ** power (no kink, unlike max(0, x))."""
    return ((1.0 + x) / 2.0) ** power


def ease(x: np.ndarray) -> np.ndarray:
    """Smoothstep of x in [0, 1] (holds at both ends)."""
    return x * x * (3.0 - 2.0 * x)


def _angle(t: np.ndarray, s: Style, freq_scale: float = 1.0) -> np.ndarray:
    return 2.0 * np.pi * s.freq * freq_scale * t + s.phase


def _gait(ch: Channels, p: np.ndarray, hip: float, knee: float, arm: float, elbow: float) -> None:
    """Alternating legs and opposite arms with gait phase p: walking and running."""
    for side, q in ((0, p), (1, p + np.pi)):
        leg, leg_knee, leg_ankle, shoulder, elb = ((L_HIP, L_KNEE, L_ANKLE, L_SHOULDER, L_ELBOW) if side == 0 else
                                                   (R_HIP, R_KNEE, R_ANKLE, R_SHOULDER, R_ELBOW))
        ch.euler[:, leg, 0] += -hip * np.sin(q) - 0.05
        ch.euler[:, leg_knee, 0] += 0.1 + knee * _bump(np.cos(q + 0.3), 3.0)
        ch.euler[:, leg_ankle, 0] += 0.15 * np.sin(q + 1.2)
        ch.euler[:, shoulder, 0] += arm * np.sin(q)
        ch.euler[:, elb, 1] += -elbow if side == 0 else elbow
    ch.euler[:, SPINE2, 1] += 0.3 * hip * np.sin(p)
    ch.euler[:, PELVIS, 1] += -0.15 * hip * np.sin(p)


# ------------------------------------------------------------------------------------------------------------------
# the families
# ------------------------------------------------------------------------------------------------------------------


def _walk(t: np.ndarray, s: Style, rng: np.random.Generator) -> Channels:
    ch, p = _rest(len(t)), _angle(t, s)
    _gait(ch, p, hip=0.35 * s.amp, knee=0.65 * s.amp, arm=0.3 * s.amp, elbow=0.15)
    ch.forward += 1.4 * s.freq * s.speed  # stride about 1.4 m per cycle
    ch.lift += 0.02 * s.amp * np.cos(2 * p)
    ch.yaw_rate += 0.1 * s.side
    return ch


def _run(t: np.ndarray, s: Style, rng: np.random.Generator) -> Channels:
    ch, p = _rest(len(t)), _angle(t, s)
    _gait(ch, p, hip=0.6 * s.amp, knee=1.4 * s.amp, arm=0.6 * s.amp, elbow=1.3)
    ch.euler[:, SPINE1, 0] += 0.15
    ch.forward += 2.0 * s.freq * s.speed
    ch.lift += 0.05 * s.amp * np.cos(2 * p)
    ch.yaw_rate += 0.15 * s.side
    return ch


def _jumping_jacks(t: np.ndarray, s: Style, rng: np.random.Generator) -> Channels:
    ch, p = _rest(len(t)), _angle(t, s)
    phi = (1.0 - np.cos(p)) / 2.0  # 0 closed, 1 open
    _lr(ch.euler, L_SHOULDER, 2, 2.6 * s.amp * phi, 2.6 * s.amp * phi)
    _lr(ch.euler, L_HIP, 2, 0.35 * s.amp * phi, 0.35 * s.amp * phi)
    bend = 0.25 * np.sin(p) ** 2
    _lr(ch.euler, L_KNEE, 0, bend, bend)
    ch.lift += 0.07 * s.amp * np.sin(p) ** 2  # two hops per cycle, mid-transition
    return ch


def _squat(t: np.ndarray, s: Style, rng: np.random.Generator) -> Channels:
    ch, p = _rest(len(t)), _angle(t, s)
    phi = s.amp * (1.0 - np.cos(p)) / 2.0
    ch.euler[:, PELVIS, 0] += 0.35 * phi
    _lr(ch.euler, L_HIP, 0, -1.75 * phi, -1.75 * phi)
    _lr(ch.euler, L_HIP, 2, 0.15 * phi, 0.15 * phi)
    _lr(ch.euler, L_KNEE, 0, 1.85 * phi, 1.85 * phi)
    _lr(ch.euler, L_ANKLE, 0, -0.45 * phi, -0.45 * phi)
    ch.euler[:, SPINE1, 0] += -0.1 * phi
    _lr(ch.euler, L_SHOULDER, 0, -1.3 * phi, -1.3 * phi)
    return ch


def _wave(t: np.ndarray, s: Style, rng: np.random.Generator) -> Channels:
    ch = _rest(len(t))
    raise_ = ease(_bump(np.sin(_angle(t, s, 0.12)), 1.0))  # slow raise / lower envelope
    wave = raise_ * 0.35 * s.amp * np.sin(_angle(t, s))
    left = 1.0 if s.side > 0 else 0.0
    for flag, joint in ((left, L_SHOULDER), (1.0 - left, R_SHOULDER)):
        sign = 1.0 if joint == L_SHOULDER else -1.0
        ch.euler[:, joint, 2] += sign * flag * raise_ * (ARMS_DOWN + 0.1)
        ch.euler[:, joint, 0] += flag * (-1.5 * raise_ + wave)
        elbow = L_ELBOW if joint == L_SHOULDER else R_ELBOW
        ch.euler[:, elbow, 1] += -sign * flag * 1.4 * raise_
    ch.euler[:, HEAD, 2] += 0.1 * s.side * raise_
    return ch


def _reach(t: np.ndarray, s: Style, rng: np.random.Generator) -> Channels:
    ch, p = _rest(len(t)), _angle(t, s)
    left, right = _bump(np.sin(p), 3.0) * s.amp, _bump(-np.sin(p), 3.0) * s.amp
    _lr(ch.euler, L_SHOULDER, 0, -1.6 * left, -1.6 * right)
    _lr(ch.euler, L_SHOULDER, 2, 0.4 * left, 0.4 * right)
    _lr(ch.euler, L_ELBOW, 1, 0.12 * left, 0.12 * right)
    _lr(ch.euler, L_HIP, 0, -0.2 * left, -0.2 * right)
    ch.euler[:, SPINE2, 1] += 0.25 * (right - left)
    ch.euler[:, SPINE1, 0] += 0.15 * (left + right)
    return ch


def _turn(t: np.ndarray, s: Style, rng: np.random.Generator) -> Channels:
    ch, p = _rest(len(t)), _angle(t, s)
    _lr(ch.euler, L_HIP, 0, -0.15 * np.sin(p), 0.15 * np.sin(p))
    _lr(ch.euler, L_KNEE, 0, 0.3 * _bump(np.cos(p)), 0.3 * _bump(-np.cos(p)))
    _lr(ch.euler, L_SHOULDER, 0, 0.1 * np.sin(p), -0.1 * np.sin(p))
    ch.yaw_rate += s.side * 1.2 * s.speed
    return ch


def _kick(t: np.ndarray, s: Style, rng: np.random.Generator) -> Channels:
    ch, p = _rest(len(t)), _angle(t, s)
    left, right = _bump(np.sin(p), 4.0), _bump(-np.sin(p), 4.0)
    _lr(ch.euler, L_HIP, 0, -1.4 * s.amp * left, -1.4 * s.amp * right)
    _lr(ch.euler, L_KNEE, 0, 0.15 + 1.2 * s.amp * left * (1 - left) * 2 + 0.2 * right,
        0.15 + 1.2 * s.amp * right * (1 - right) * 2 + 0.2 * left)
    _lr(ch.euler, L_SHOULDER, 0, -0.6, -0.6)
    _lr(ch.euler, L_SHOULDER, 2, 0.3, 0.3)
    _lr(ch.euler, L_ELBOW, 1, -1.6, -1.6)
    ch.euler[:, SPINE1, 0] += -0.2 * (left + right)
    return ch


def _crouch(t: np.ndarray, s: Style, rng: np.random.Generator) -> Channels:
    ch, p = _rest(len(t)), _angle(t, s)
    phi = s.amp * ease((1.0 - np.cos(p)) / 2.0)
    ch.euler[:, PELVIS, 0] += 0.55 * phi
    _lr(ch.euler, L_HIP, 0, -2.0 * phi, -2.0 * phi)
    _lr(ch.euler, L_KNEE, 0, 2.3 * phi, 2.3 * phi)
    _lr(ch.euler, L_ANKLE, 0, -0.55 * phi, -0.55 * phi)
    ch.euler[:, SPINE1, 0] += 0.3 * phi
    ch.euler[:, HEAD, 0] += -0.35 * phi
    _lr(ch.euler, L_SHOULDER, 0, -0.8 * phi, -0.8 * phi)
    _lr(ch.euler, L_ELBOW, 1, -0.5 * phi, -0.5 * phi)
    return ch


def _box(t: np.ndarray, s: Style, rng: np.random.Generator) -> Channels:
    ch, p = _rest(len(t)), _angle(t, s)
    left, right = _bump(np.sin(p), 6.0) * s.amp, _bump(-np.sin(p), 6.0) * s.amp
    _lr(ch.euler, L_SHOULDER, 2, 0.25 + 0.7 * left, 0.25 + 0.7 * right)
    _lr(ch.euler, L_SHOULDER, 0, -0.7 - 0.8 * left, -0.7 - 0.8 * right)
    _lr(ch.euler, L_ELBOW, 1, -2.1 + 1.9 * left, -2.1 + 1.9 * right)
    ch.euler[:, SPINE2, 1] += 0.3 * (right - left)
    _lr(ch.euler, L_HIP, 0, -0.25, 0.1)
    _lr(ch.euler, L_KNEE, 0, 0.3, 0.3)
    ch.lift += 0.015 * np.sin(2 * p)
    return ch


def _bend(t: np.ndarray, s: Style, rng: np.random.Generator) -> Channels:
    ch, p = _rest(len(t)), _angle(t, s)
    phi = s.amp * ease((1.0 - np.cos(p)) / 2.0)
    ch.euler[:, PELVIS, 0] += 0.8 * phi
    for joint in (SPINE1, SPINE2, SPINE3):
        ch.euler[:, joint, 0] += 0.2 * phi
    _lr(ch.euler, L_HIP, 0, -0.95 * phi, -0.95 * phi)  # legs stay about vertical under the tilted pelvis
    _lr(ch.euler, L_KNEE, 0, 0.3 * phi, 0.3 * phi)
    _lr(ch.euler, L_SHOULDER, 0, -0.7 * phi, -0.7 * phi)
    ch.euler[:, HEAD, 0] += -0.25 * phi
    return ch


def _lunge(t: np.ndarray, s: Style, rng: np.random.Generator) -> Channels:
    ch, p = _rest(len(t)), _angle(t, s)
    left, right = _bump(np.sin(p), 2.0) * s.amp, _bump(-np.sin(p), 2.0) * s.amp
    _lr(ch.euler, L_HIP, 0, -1.3 * left + 0.45 * right, -1.3 * right + 0.45 * left)
    _lr(ch.euler, L_KNEE, 0, 1.4 * left + 1.4 * right, 1.4 * right + 1.4 * left)
    _lr(ch.euler, L_ANKLE, 0, 0.3 * right, 0.3 * left)
    _lr(ch.euler, L_SHOULDER, 2, 0.15, 0.15)
    _lr(ch.euler, L_SHOULDER, 0, 0.25, 0.25)
    _lr(ch.euler, L_ELBOW, 1, -1.5, -1.5)  # hands on the hips
    return ch


def _sidestep(t: np.ndarray, s: Style, rng: np.random.Generator) -> Channels:
    ch, p = _rest(len(t)), _angle(t, s)
    _lr(ch.euler, L_HIP, 2, 0.3 * s.amp * _bump(np.sin(p)), 0.3 * s.amp * _bump(-np.sin(p)))
    _lr(ch.euler, L_KNEE, 0, 0.25 + 0.2 * _bump(np.cos(p)), 0.25 + 0.2 * _bump(-np.cos(p)))
    _lr(ch.euler, L_SHOULDER, 2, 0.3 * _bump(np.sin(p)), 0.3 * _bump(-np.sin(p)))
    ch.lateral += 0.8 * s.speed * np.sin(_angle(t, s, 0.25))  # a few steps one way, then back
    ch.lift += 0.01 * np.cos(2 * p)
    return ch


def _talk(t: np.ndarray, s: Style, rng: np.random.Generator) -> Channels:
    ch, p = _rest(len(t)), _angle(t, s)
    gestures = smooth_noise(rng, len(t), 6, sigma=0.35 * FPS / s.freq, amp=0.35 * s.amp)
    _lr(ch.euler, L_SHOULDER, 0, -0.4 + gestures[:, 0], -0.4 + gestures[:, 1])
    _lr(ch.euler, L_SHOULDER, 2, 0.2 + 0.5 * gestures[:, 2], 0.2 + 0.5 * gestures[:, 3])
    _lr(ch.euler, L_ELBOW, 1, -1.0 + gestures[:, 4], -1.0 + gestures[:, 5])
    ch.euler[:, PELVIS, 2] += 0.05 * np.sin(0.3 * p)
    ch.euler[:, HEAD, 1] += 0.3 * np.sin(0.5 * p)
    return ch


def _phone(t: np.ndarray, s: Style, rng: np.random.Generator) -> Channels:
    ch, p = _rest(len(t)), _angle(t, s)
    _gait(ch, p, hip=0.2 * s.amp, knee=0.4 * s.amp, arm=0.15, elbow=0.2)
    ch.forward += 0.5 * s.freq * s.speed
    phone, elbow = (L_SHOULDER, L_ELBOW) if s.side > 0 else (R_SHOULDER, R_ELBOW)
    sign = 1.0 if phone == L_SHOULDER else -1.0
    ch.euler[:, phone, 2] += sign * 0.15
    ch.euler[:, phone, 0] += -0.5
    ch.euler[:, elbow, 1] += -sign * 2.2
    ch.euler[:, HEAD, 2] += 0.15 * s.side
    return ch


def _idle(t: np.ndarray, s: Style, rng: np.random.Generator) -> Channels:
    ch, p = _rest(len(t)), _angle(t, s)
    ch.euler[:, PELVIS, 2] += 0.06 * np.sin(p)
    _lr(ch.euler, L_HIP, 2, -0.06 * np.sin(p), -0.06 * np.sin(p))
    _lr(ch.euler, L_KNEE, 0, 0.15 * _bump(-np.sin(p)), 0.15 * _bump(np.sin(p)))
    ch.euler[:, NECK, 1] += 0.5 * s.amp * np.sin(_angle(t, s, 0.4))
    _lr(ch.euler, L_SHOULDER, 0, -0.3, -0.3)
    _lr(ch.euler, L_ELBOW, 1, -1.2 * s.amp, -1.2 * s.amp)  # hands folded in front
    return ch


FamilyFn = Callable[[np.ndarray, Style, np.random.Generator], Channels]
FAMILIES: dict[str, tuple[FamilyFn, tuple[float, float]]] = {  # name -> (function, rhythm range in Hz)
    "walk": (_walk, (0.8, 1.0)),
    "run": (_run, (1.3, 1.6)),
    "jumping_jacks": (_jumping_jacks, (0.7, 1.0)),
    "squat": (_squat, (0.25, 0.45)),
    "wave": (_wave, (1.5, 2.5)),
    "reach": (_reach, (0.2, 0.35)),
    "turn": (_turn, (1.0, 1.4)),
    "kick": (_kick, (0.35, 0.55)),
    "crouch": (_crouch, (0.12, 0.2)),
    "box": (_box, (0.8, 1.4)),
    "bend": (_bend, (0.15, 0.25)),
    "lunge": (_lunge, (0.2, 0.35)),
    "sidestep": (_sidestep, (0.7, 1.0)),
    "talk": (_talk, (0.4, 0.7)),
    "phone": (_phone, (0.6, 0.8)),
    "idle": (_idle, (0.15, 0.3)),
}
TRAVELLING = frozenset({"walk", "run", "phone", "sidestep"})  # families that move the root across the floor


def smooth_noise(rng: np.random.Generator, n: int, dims: int, sigma: float, amp: float) -> np.ndarray:
    """[n, dims] stationary Gaussian-filtered white noise of standard deviation `amp` (filter sigma in frames).

    The filter's gain is undone exactly (not by the sample's spread), so short and long sequences move alike.
    """
    pad = int(4 * sigma) + 1
    impulse = np.zeros(2 * pad + 1)
    impulse[pad] = 1.0
    gain = np.sqrt((gaussian_filter1d(impulse, sigma) ** 2).sum())
    raw = gaussian_filter1d(rng.standard_normal((n + 2 * pad, dims)), sigma, axis=0)[pad: pad + n]
    return amp * raw / gain
