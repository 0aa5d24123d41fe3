"""The two domains of the synthetic world, the size presets, and the markdown table that states how they differ.

Source "lab" (Human3.6M-like): four fixed cameras at chest height 4-5 m around a small arena, plain backgrounds,
studio light, seven named subjects in muted clothes, everyday actions. Target "wild" (3DPW-like): a hand-held
camera following the person, other focal lengths, elevations and distances, cluttered backgrounds, varied light,
new people with other shapes and vivid clothes, occluders, pairs of people, athletic motions.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from datasets.synthetic.detector_noise import DetectorNoise
from datasets.synthetic.motion import FPS

LAB_FAMILIES = ("walk", "wave", "reach", "turn", "bend", "talk", "phone", "idle")
WILD_FAMILIES = ("run", "jumping_jacks", "squat", "kick", "crouch", "box", "lunge", "sidestep")
ACTION_NAMES = {"walk": "Walking", "wave": "Greeting", "reach": "Directions", "turn": "Turning",
                "bend": "Purchases", "talk": "Discussion", "phone": "Phoning", "idle": "Waiting"}
H36M_CAMERAS = ("54138969", "55011271", "58860488", "60457274")  # camera names of the lab rig
SUBJECT_GENDERS = {"S1": "female", "S5": "female", "S6": "male", "S7": "female", "S8": "male", "S9": "male",
                   "S11": "male"}  # Human3.6M's subjects
CHEST_HEIGHT = 1.1  # metres: the height cameras aim at


@dataclass(frozen=True)
class DomainSpec:
    """Distributions of one domain (ranges are uniform unless stated)."""

    name: str
    image_size: tuple[int, int]  # (width, height) pixels
    focal: tuple[float, float]  # pixels
    distance: tuple[float, float]  # metres, camera to arena centre (lab) or to the person (wild)
    cam_height: tuple[float, float]  # metres above the floor
    families: tuple[str, ...]
    beta_std: float  # std of the shape coefficients 2..10 (and 1 in the lab)
    beta0: tuple[float, float] | None  # range of the first shape coefficient (overall size); None: N(0, beta_std)
    beta_clip: float
    vivid: bool  # saturated, patterned clothes instead of muted plain ones
    shake_deg: float  # hand-held shake (0: tripod)
    fps: float  # image rate


LAB = DomainSpec(name="lab", image_size=(400, 400), focal=(440.0, 475.0), distance=(4.0, 5.0),
                 cam_height=(1.2, 1.6), families=LAB_FAMILIES, beta_std=0.6, beta0=None, beta_clip=1.5,
                 vivid=False, shake_deg=0.0, fps=FPS / 3)
WILD = DomainSpec(name="wild", image_size=(360, 640), focal=(450.0, 900.0), distance=(2.5, 7.0),
                  cam_height=(0.5, 2.4), families=WILD_FAMILIES, beta_std=1.2, beta0=(-2.5, 2.5), beta_clip=3.0,
                  vivid=True, shake_deg=0.6, fps=FPS)
LAB_STEP = 3  # keep every 3rd motion frame: 10 fps, as Human3.6M's every 5th frame of 50 fps
PAIR_EXTRA_DISTANCE = 1.0  # metres further back when filming two people
LAB_ARENA_RADIUS = 1.2  # metres: walkers turn back inside this circle, staying in every camera's view
PAIR_ARENA_RADIUS = 0.6  # metres around each person of a wild pair, so they do not walk into each other


@dataclass(frozen=True)
class Preset:
    """How much to generate."""

    train_subjects: tuple[str, ...]
    valid_subjects: tuple[str, ...]
    actions: int  # actions per subject (cycling through LAB_FAMILIES)
    train_frames: int  # kept frames per action and camera, training subjects
    valid_frames: int  # the same for the held-out subjects
    wild_sequences: int
    wild_frames: int  # frames per target sequence

    def lab_frames(self) -> tuple[int, int]:
        """(train, valid) image counts."""
        per = self.actions * len(H36M_CAMERAS)
        return (len(self.train_subjects) * per * self.train_frames, len(self.valid_subjects) * per * self.valid_frames)


PRESETS = {
    "default": Preset(("S1", "S5", "S6", "S7", "S8"), ("S9", "S11"), actions=8, train_frames=150, valid_frames=40,
                      wild_sequences=8, wild_frames=300),
    "small": Preset(("S1", "S5", "S6", "S7", "S8"), ("S9", "S11"), actions=4, train_frames=30, valid_frames=10,
                    wild_sequences=4, wild_frames=100),
    # `make demo`: a source set just large enough for the retrieval database, one target sequence
    "demo": Preset(("S1", "S5", "S6", "S7", "S8"), ("S9",), actions=2, train_frames=15, valid_frames=5,
                   wild_sequences=1, wild_frames=200),
    "tiny": Preset(("S1",), ("S9",), actions=2, train_frames=3, valid_frames=2, wild_sequences=3, wild_frames=10),
}


@dataclass(frozen=True)
class WildLayout:
    """Fixed-by-index layout of target sequence i (so every preset has each kind)."""

    people: int  # 2 in every third sequence (i % 3 == 1)
    occluders: int  # (1, 0, 2, 0)[i % 4]
    invalid_frames: int  # frames at the start with campose_valid False (when i % 4 == 2)


def wild_layout(index: int, frames: int) -> WildLayout:
    """The layout of target sequence `index` with `frames` frames."""
    return WildLayout(people=2 if index % 3 == 1 else 1, occluders=(1, 0, 2, 0)[index % 4],
                      invalid_frames=min(6, frames // 4) if index % 4 == 2 else 0)


def wild_sequence_name(index: int) -> str:
    """`synthetic_00`, ...: names outside 3DPW's list, sorted in generation order."""
    return f"synthetic_{index:02d}"


def sample_betas(rng: np.random.Generator, spec: DomainSpec) -> np.ndarray:
    """[10] shape coefficients from the domain's distribution."""
    betas = rng.normal(0.0, spec.beta_std, 10)
    if spec.beta0 is not None:
        betas[0] = rng.uniform(*spec.beta0)
    return np.clip(betas, -spec.beta_clip, spec.beta_clip)


def _fov(focal: float, pixels: int) -> float:
    """Field of view (degrees) of `pixels` at a focal length in pixels."""
    return float(np.degrees(2 * np.arctan(pixels / 2 / focal)))


def _elevation(spec: DomainSpec) -> tuple[float, float]:
    """Range of the camera's downward viewing angle to the chest, degrees (negative: from below)."""
    lo = np.degrees(np.arctan((spec.cam_height[0] - CHEST_HEIGHT) / spec.distance[0]))
    hi = np.degrees(np.arctan((spec.cam_height[1] - CHEST_HEIGHT) / spec.distance[0]))
    return float(lo), float(hi)


def _noise_summary(n: DetectorNoise) -> str:
    """One table cell describing the detector-noise model with its parameters."""
    return (f"jitter sd {100 * n.jitter:.1f} % of the person's box diagonal x 0.6 (face) to 1.6 (wrists, ankles), "
            f"AR(1) {n.temporal_corr} over frames; joints hidden by others or outside the image: conf 0; far-side "
            f"face points dropped; misses {100 * n.miss_rate:.0f} %, outliers {100 * n.outlier_rate:.0f} %, "
            f"left/right swaps {100 * n.swap_rate:.0f} % of frames; frames with < {n.min_joints} joints empty")


def describe_domains(preset: str = "default") -> str:
    """A markdown table of both domains' distributions and the preset's sizes."""
    p, lab, wild = PRESETS[preset], LAB, WILD

    def both(fmt: Callable[[DomainSpec], str]) -> tuple[str, str]:
        return fmt(lab), fmt(wild)

    rows = [
        ("image size (w x h)", *both(lambda s: f"{s.image_size[0]} x {s.image_size[1]} px")),
        ("camera", f"{len(H36M_CAMERAS)} fixed cameras (tripods) at azimuths 45 + 90k deg (+-8), one rig for all "
         "subjects", "hand-held, following the person: smooth random walks of azimuth (0.12 rad per sqrt(s), "
         "about 20 deg in 10 s), distance (3 % per sqrt(s)) and height (3 cm per sqrt(s)); "
         f"{wild.shake_deg} deg shake; roll sd 2 deg"),
        ("focal length", *both(lambda s: f"{s.focal[0]:.0f}-{s.focal[1]:.0f} px (horizontal FOV "
                                         f"{_fov(s.focal[1], s.image_size[0]):.0f}-"
                                         f"{_fov(s.focal[0], s.image_size[0]):.0f} deg)")),
        ("camera distance", f"{lab.distance[0]}-{lab.distance[1]} m from the arena centre",
         f"{wild.distance[0]}-{wild.distance[1]} m from the person (at least a framing of 85 % of the image "
         f"height; +{PAIR_EXTRA_DISTANCE} m for pairs)"),
        ("camera height", *both(lambda s: f"{s.cam_height[0]}-{s.cam_height[1]} m")),
        ("elevation to the chest", *both(lambda s: "{:.0f} to {:.0f} deg".format(*_elevation(s)))),
        ("motion families", *both(lambda s: ", ".join(s.families))),
        ("motion per clip", f"one action per clip (Human3.6M-style names), arena radius {LAB_ARENA_RADIUS} m",
         f"1-3 families cross-faded over 1 s, free roaming (pairs: arenas of {PAIR_ARENA_RADIUS} m)"),
        ("frame rate", *both(lambda s: f"{s.fps:.0f} fps")),
        ("subjects", f"{' '.join(p.train_subjects)} (train), {' '.join(p.valid_subjects)} (held out), the genders "
         "of Human3.6M", "a new person per sequence, random gender"),
        ("shape (betas)", *both(lambda s: (f"beta1 U({s.beta0[0]}, {s.beta0[1]}), others " if s.beta0 else "")
                                + f"N(0, {s.beta_std}^2), clipped +-{s.beta_clip}")),
        ("clothing", "muted plain colours (grey, navy, brown, black), long trousers 90 %, short sleeves 40 %",
         "saturated random hues; plain, stripes, checks or mottled; shorts 40 %, short sleeves 40 %"),
        ("background", "plain wall and floor, vignette, fixed per camera",
         "cluttered procedural panorama (sky, buildings, ground texture, poles, discs, lines) scrolling with the "
         "camera"),
        ("lighting", "neutral studio (head light 3.0, ambient 0.4)",
         "head light 1.2-6.0, ambient 0.1-0.6, warm/cool tint +-15 %"),
        ("occluders", "none", "1-2 boxes (0.4-1.2 m wide) or poles between camera and person in half of the "
         "sequences"),
        ("people per image", "1", "1, or 2 in every third sequence"),
        ("2D keypoints written", "projected GT joints (`part`, conf 1; 0 outside the image)",
         "GT projection (`j2d` after preprocessing) and detector-noise estimates (`poses2d`, COCO-18)"),
        ("detector noise (`poses2d`)", "none", _noise_summary(DetectorNoise())),
        (f"size (preset {preset})", "{} train + {} held-out images".format(*p.lab_frames()),
         f"{p.wild_sequences} sequences x {p.wild_frames} frames"),
    ]
    lines = ["| | source \"lab\" (Human3.6M-like) | target \"wild\" (3DPW-like) |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines) + "\n"
