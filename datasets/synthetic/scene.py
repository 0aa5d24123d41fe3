"""Scene pieces of the synthetic world: cameras, lights, backgrounds, clothing colours and occluders.

Conventions: the world is y-up with the floor at y = 0; a camera is `K` [3, 3] (pixels) and `cam_from_world`
[4, 4] in the OpenCV convention (x right, y down, z forward), i.e. a pixel is `K @ (R X + t)` after the perspective
divide, exactly as 3DPW's `cam_poses` and `cam_intrinsics` are used. Images are uint8 RGB [H, W, 3].
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

from datasets.synthetic.motion_families import smooth_noise

# garment regions by dominant SMPL part (skinning weights)
_SKIN_PARTS = (12, 15, 20, 21, 22, 23)  # neck, head, wrists, hands
_TOP_PARTS = (3, 6, 9, 13, 14, 16, 17)  # spine, collars, upper arms
_FOREARM_PARTS = (18, 19)
_PANTS_PARTS = (0, 1, 2)  # pelvis, thighs
_SHIN_PARTS = (4, 5)
_SHOE_PARTS = (7, 8, 10, 11)
SKIN_TONES = np.array([[0.96, 0.80, 0.69], [0.88, 0.67, 0.53], [0.76, 0.57, 0.42], [0.55, 0.38, 0.26],
                       [0.36, 0.24, 0.16]])
HAIR_COLORS = np.array([[0.08, 0.06, 0.05], [0.25, 0.16, 0.09], [0.55, 0.40, 0.22], [0.75, 0.65, 0.45],
                        [0.45, 0.45, 0.45]])


# ------------------------------------------------------------------------------------------------------------------
# cameras
# ------------------------------------------------------------------------------------------------------------------


def intrinsics(focal: float, width: int, height: int, principal_offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """K [3, 3] float64 with fx = fy = focal (pixels) and the principal point at the image centre plus an offset."""
    return np.array([[focal, 0.0, width / 2.0 + principal_offset[0]],
                     [0.0, focal, height / 2.0 + principal_offset[1]],
                     [0.0, 0.0, 1.0]])


def look_at(eye: np.ndarray, target: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """cam_from_world [4, 4] (OpenCV axes) of a camera at `eye` looking at `target` in a y-up world.

    Args:
        eye, target: [3] metres.
        roll: radians about the viewing axis.
    """
    forward = np.asarray(target, dtype=np.float64) - np.asarray(eye, dtype=np.float64)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 1.0, 0.0])  # camera x, horizontal
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)  # camera y points down
    rot = np.stack((right, down, forward))  # rows: camera axes in world coordinates
    c, s = np.cos(roll), np.sin(roll)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ rot
    out = np.eye(4)
    out[:3, :3] = rot
    out[:3, 3] = -rot @ np.asarray(eye, dtype=np.float64)
    return out


def camera_center(cam_from_world: np.ndarray) -> np.ndarray:
    """Camera centre(s) in the world: [..., 4, 4] -> [..., 3]."""
    rot, t = cam_from_world[..., :3, :3], cam_from_world[..., :3, 3]
    return -np.einsum("...ji,...j->...i", rot, t)


def lab_cameras(rng: np.random.Generator, n: int, distance: tuple[float, float], height: tuple[float, float],
                look_height: float = 1.0) -> list[np.ndarray]:
    """A fixed rig of n cameras around the arena centre (Human3.6M style), each a cam_from_world [4, 4].

    Cameras sit at azimuths 45 + k * 360 / n degrees (+- 8 degrees), `distance` metres from the centre, at
    `height` metres (chest height), looking at the centre at `look_height` (+- 0.1 m).
    """
    cams = []
    for k in range(n):
        az = np.deg2rad(45.0 + k * 360.0 / n + rng.uniform(-8.0, 8.0))
        dist, h = rng.uniform(*distance), rng.uniform(*height)
        eye = np.array([dist * np.sin(az), h, dist * np.cos(az)])
        target = np.array([rng.uniform(-0.1, 0.1), look_height + rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1)])
        cams.append(look_at(eye, target))
    return cams


def _drift(rng: np.random.Generator, n: int, rate: float, fps: float) -> np.ndarray:
    """[n] smooth random walk with zero mean that spreads by `rate` per square-root second."""
    walk = np.cumsum(rng.standard_normal(n)) * rate / np.sqrt(fps)
    walk = gaussian_filter1d(walk, fps / 2.0, mode="nearest")
    return walk - walk.mean()


def handheld_path(
    rng: np.random.Generator, targets: np.ndarray, distance: float, height: float, azimuth: float,
    shake_deg: float, fps: float = 30.0,
) -> np.ndarray:
    """A hand-held camera following `targets`: cam_from_world [N, 4, 4].

    The operator stays about `distance` metres from the (smoothed) target at a slowly wandering azimuth
    (0.12 rad per square-root second), distance (3 %) and height (3 cm), and the view shakes: a jitter of the
    look-at point of about `shake_deg` degrees (filtered at about 3 Hz) and a slow roll of about 2 degrees.

    Args:
        targets: [N, 3] world points to film (e.g. the chest of the person), metres.
        distance, height: metres (camera height above the floor); azimuth: radians about +y.
        shake_deg: standard deviation of the shake, degrees.
    """
    n = len(targets)
    center = gaussian_filter1d(targets, sigma=0.7 * fps, axis=0, mode="nearest")
    az = azimuth + _drift(rng, n, 0.12, fps)
    dist = distance * (1.0 + _drift(rng, n, 0.03, fps))
    cam_h = np.maximum(0.3, height + _drift(rng, n, 0.03, fps))
    eyes = center + np.stack((dist * np.sin(az), np.zeros(n), dist * np.cos(az)), axis=1)
    eyes[:, 1] = cam_h
    shake = smooth_noise(rng, n, 2, fps / 20.0, np.deg2rad(shake_deg))
    roll = smooth_noise(rng, n, 1, fps, np.deg2rad(2.0))[:, 0]
    out = np.empty((n, 4, 4))
    for i in range(n):
        view = targets[i] * 0.3 + center[i] * 0.7  # follow the person, lagging like an operator
        offset = dist[i] * np.array([np.cos(az[i]) * shake[i, 0], shake[i, 1], -np.sin(az[i]) * shake[i, 0]])
        out[i] = look_at(eyes[i], view + offset, roll[i])
    return out


# ------------------------------------------------------------------------------------------------------------------
# lights
# ------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lighting:
    """Light of a scene for `utils.render.Renderer` (a head light plus ambient) and a colour cast.

    The shared renderer lights along the viewing direction; the colour temperature of the light is applied as a
    tint of the rendered objects' colours.
    """

    intensity: float  # head-light intensity (pyrender directional-light units)
    ambient: float  # ambient level in [0, 1]
    tint: tuple[float, float, float]  # RGB multiplier of object colours (warm / cool light)


def lab_lighting() -> Lighting:
    """Even, neutral studio light."""
    return Lighting(intensity=3.0, ambient=0.4, tint=(1.0, 1.0, 1.0))


def wild_lighting(rng: np.random.Generator) -> Lighting:
    """Bright sun to dim overcast, warm to cool."""
    warm = rng.uniform(-1.0, 1.0)
    tint = (1.0 + 0.12 * warm, 1.0, 1.0 - 0.15 * warm)
    return Lighting(intensity=float(rng.uniform(1.2, 6.0)), ambient=float(rng.uniform(0.1, 0.6)),
                    tint=tuple(float(c) for c in tint))


# ------------------------------------------------------------------------------------------------------------------
# backgrounds
# ------------------------------------------------------------------------------------------------------------------


def lab_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A plain studio view: a flat wall, a darker floor below a horizon line, mild vignette and sensor noise."""
    wall = rng.uniform(0.35, 0.7) * np.array([1.0, rng.uniform(0.95, 1.02), rng.uniform(0.88, 1.0)])
    floor = wall * rng.uniform(0.55, 0.8)
    horizon = int(height * rng.uniform(0.55, 0.7))
    img = np.empty((height, width, 3))
    img[:horizon], img[horizon:] = wall, floor
    yy, xx = np.mgrid[0:height, 0:width]
    r2 = ((xx - width / 2) / width) ** 2 + ((yy - height / 2) / height) ** 2
    img *= (1.0 - 0.35 * r2)[..., None]
    img += rng.normal(0.0, 0.01, img.shape)
    return (np.clip(img, 0.0, 1.0) * 255).astype(np.uint8)


def _value_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """[H, W] smooth noise in [0, 1]: random values on a coarse grid, bicubically upsampled."""
    grid = rng.uniform(0.0, 1.0, (cells, max(2, cells * width // max(height, 1))))
    return np.clip(cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def wild_background_canvas(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A cluttered outdoor-like canvas [height, width, 3] uint8 whose left and right edges join seamlessly.

    Sky gradient, far blobs (trees), building blocks with windows, a textured ground, poles and random shapes,
    all in saturated random colours with value noise on top.
    """
    horizon = int(height * rng.uniform(0.35, 0.6))
    img = np.zeros((height, width, 3))
    sky_top, sky_low = rng.uniform(0.3, 1.0, 3), rng.uniform(0.5, 1.0, 3)
    ramp = np.linspace(0.0, 1.0, horizon)[:, None, None]
    img[:horizon] = sky_top * (1 - ramp) + sky_low * ramp
    ground = rng.uniform(0.15, 0.6, 3)
    img[horizon:] = ground * (0.7 + 0.6 * _value_noise(rng, height - horizon, width, 24))[..., None]
    canvas = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    for _ in range(rng.integers(8, 20)):  # buildings
        x0, w = int(rng.uniform(0, width)), int(rng.uniform(0.05, 0.25) * width)
        top = int(horizon - rng.uniform(0.05, 0.35) * height)
        color = tuple(int(c) for c in rng.integers(30, 230, 3))
        cv2.rectangle(canvas, (x0, top), (x0 + w, horizon + 5), color, -1)
        window = tuple(int(c) for c in np.clip(np.array(color) + rng.integers(-80, 80, 3), 0, 255))
        for wy in range(top + 8, horizon - 8, 18):
            for wx in range(x0 + 6, x0 + w - 10, 16):
                cv2.rectangle(canvas, (wx, wy), (wx + 7, wy + 9), window, -1)
    for _ in range(rng.integers(20, 45)):  # clutter: discs, poles, ground objects, lines
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.uniform(0, width)), int(rng.uniform(0.2, 1.0) * height)
        kind = rng.integers(4)
        if kind == 0:
            cv2.circle(canvas, (x, y), int(rng.uniform(0.01, 0.08) * width), color, -1)
        elif kind == 1:
            cv2.rectangle(canvas, (x, y - int(rng.uniform(0.1, 0.4) * height)), (x + int(rng.uniform(2, 8)), y),
                          color, -1)
        elif kind == 2:
            y = int(rng.uniform(horizon, height))
            cv2.rectangle(canvas, (x, y), (x + int(rng.uniform(0.02, 0.12) * width),
                                           y + int(rng.uniform(0.02, 0.08) * height)), color, -1)
        else:
            cv2.line(canvas, (x, y), (int(x + rng.uniform(-0.3, 0.3) * width), int(y + rng.uniform(-0.1, 0.1)
                                                                                     * height)), color, 2)
    shade = 0.75 + 0.5 * _value_noise(rng, height, width, 12)
    canvas = np.clip(canvas * shade[..., None] + rng.normal(0, 4.0, canvas.shape), 0, 255).astype(np.uint8)
    return _make_periodic(canvas, band=max(4, width // 12))


def _make_periodic(img: np.ndarray, band: int) -> np.ndarray:
    """Cross-fade the right `band` columns into the left ones and drop them, so the image tiles horizontally."""
    w = img.shape[1] - band
    ramp = np.linspace(0.0, 1.0, band)[None, :, None]
    out = img[:, :w].astype(np.float64)
    out[:, :band] = img[:, w:] * (1.0 - ramp) + img[:, :band] * ramp
    return out.astype(np.uint8)


def background_view(
    canvas: np.ndarray, cam_from_world: np.ndarray, focal: float, width: int, height: int
) -> np.ndarray:
    """The window of a periodic canvas that a camera sees, shifted with the camera's yaw and pitch.

    A flat panorama approximation (no parallax): x offset = focal * yaw (wrapping), y offset = focal * pitch / 2
    (halved so that a camera looking down still sees some horizon and clutter, not only ground).
    """
    forward = cam_from_world[2, :3]  # camera z axis in the world
    yaw = np.arctan2(forward[0], forward[2])
    pitch = np.arcsin(np.clip(forward[1], -1.0, 1.0))
    ch, cw = canvas.shape[:2]
    x0 = int(round(-focal * yaw)) % cw
    y0 = int(np.clip(round((ch - height) / 2 - focal * pitch / 2), 0, ch - height))
    cols = (x0 + np.arange(width)) % cw
    return canvas[y0: y0 + height][:, cols]


# ------------------------------------------------------------------------------------------------------------------
# clothing
# ------------------------------------------------------------------------------------------------------------------


def clothing_colors(
    lbs_weights: np.ndarray, rest_vertices: np.ndarray, rng: np.random.Generator, vivid: bool
) -> np.ndarray:
    """Per-vertex RGB [V, 3] in [0, 1]: skin, hair, a top, trousers or shorts, shoes, from each vertex's dominant
    skinning part, with a simple pattern (plain, stripes, checks or mottled).

    Args:
        lbs_weights: [V, 24] skinning weights.
        rest_vertices: [V, 3] rest-pose vertices (metres, y up), for hair and patterns.
        vivid: saturated colours and patterns (wild) instead of muted plain clothes (lab).
    """
    assert lbs_weights.ndim == 2 and lbs_weights.shape[1] == 24, lbs_weights.shape
    assert rest_vertices.shape == (lbs_weights.shape[0], 3), rest_vertices.shape
    part = lbs_weights.argmax(axis=1)
    colors = np.tile(SKIN_TONES[rng.integers(len(SKIN_TONES))], (len(part), 1))
    top, bottom, shoes = (_garment_color(rng, vivid) for _ in range(3))
    long_sleeves, long_legs = rng.random() < 0.6, rng.random() < (0.6 if vivid else 0.9)
    top_parts = _TOP_PARTS + (_FOREARM_PARTS if long_sleeves else ())
    bottom_parts = _PANTS_PARTS + (_SHIN_PARTS if long_legs else ())
    pattern = rng.integers(4) if vivid else 0
    for parts, color in ((top_parts, top), (bottom_parts, bottom)):
        mask = np.isin(part, parts)
        colors[mask] = color * _pattern(rest_vertices[mask], pattern, rng)[:, None]
    colors[np.isin(part, _SHOE_PARTS)] = shoes * 0.6
    head = part == 15
    head_top = rest_vertices[head, 1].max()
    head_z = rest_vertices[head, 2].mean()
    hair = head & ((rest_vertices[:, 1] > head_top - 0.07) | (rest_vertices[:, 2] < head_z - 0.02))
    colors[hair] = HAIR_COLORS[rng.integers(len(HAIR_COLORS))]
    colors *= rng.uniform(0.96, 1.04, (len(colors), 1))  # fabric grain
    return np.clip(colors, 0.0, 1.0)


def _garment_color(rng: np.random.Generator, vivid: bool) -> np.ndarray:
    """An RGB garment colour: any saturated hue if vivid, else a muted grey, navy, brown or black."""
    if vivid:
        hsv = np.array([[[rng.uniform(0, 180), rng.uniform(120, 255), rng.uniform(90, 255)]]], dtype=np.uint8)
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0] / 255.0
    muted = np.array([[0.2, 0.2, 0.22], [0.15, 0.18, 0.3], [0.35, 0.3, 0.25], [0.08, 0.08, 0.08],
                      [0.5, 0.5, 0.5], [0.6, 0.58, 0.52]])
    return muted[rng.integers(len(muted))]


def _pattern(points: np.ndarray, kind: int, rng: np.random.Generator) -> np.ndarray:
    """[V] brightness multiplier: 0 plain, 1 horizontal stripes, 2 checks, 3 mottled."""
    if kind == 0:
        return np.ones(len(points))
    period = rng.uniform(0.04, 0.12)
    if kind == 1:
        return np.where(np.sin(2 * np.pi * points[:, 1] / period) > 0, 1.0, 0.55)
    if kind == 2:
        cells = np.floor(points[:, 0] / period) + np.floor(points[:, 1] / period)
        return np.where(cells % 2 == 0, 1.0, 0.6)
    return 0.7 + 0.3 * np.sin(points @ rng.normal(0, 40.0, 3)) ** 2


# ------------------------------------------------------------------------------------------------------------------
# occluders
# ------------------------------------------------------------------------------------------------------------------


def box_mesh(center: np.ndarray, size: np.ndarray, yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """A flat-shaded box: vertices [24, 3] (4 per face) and faces [12, 3], bottom centre at `center` (y up)."""
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (0.0, 1.0) for z in (-0.5, 0.5)]) * size
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    verts = np.concatenate([corners[list(q)] for q in quads]) @ rot.T + center
    faces = np.concatenate([[[4 * k, 4 * k + 1, 4 * k + 2], [4 * k, 4 * k + 2, 4 * k + 3]] for k in range(6)])
    return verts, faces.astype(np.int64)


def sample_occluders(
    rng: np.random.Generator, eye: np.ndarray, person: np.ndarray, count: int
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """`count` boxes or poles standing on the floor between a camera and a person.

    Each is placed at 35-65 % of the floor distance from the camera to the person, up to 0.5 m to the side of the
    line of sight: a box 0.4-1.2 m wide and 0.6-1.3 m tall (a bin, a bench, a car bonnet) or a pole 0.08-0.15 m
    wide and 2-3 m tall.

    Args:
        eye, person: [3] world positions (metres) of the camera and the person.
    Returns:
        (vertices [V, 3], faces [F, 3], colors [V, 3] in [0, 1]) per occluder.
    """
    out = []
    line = np.array([person[0] - eye[0], 0.0, person[2] - eye[2]])
    side = np.cross(line, [0.0, 1.0, 0.0])
    side /= max(np.linalg.norm(side), 1e-9)
    for _ in range(count):
        base = eye * [1, 0, 1] + rng.uniform(0.35, 0.65) * line + rng.uniform(-0.5, 0.5) * side
        if rng.random() < 0.6:
            size = np.array([rng.uniform(0.4, 1.2), rng.uniform(0.6, 1.3), rng.uniform(0.3, 0.8)])
        else:
            width = rng.uniform(0.08, 0.15)
            size = np.array([width, rng.uniform(2.0, 3.0), width])
        verts, faces = box_mesh(base, size, rng.uniform(0, np.pi))
        color = rng.uniform(0.1, 0.9, 3) * rng.uniform(0.9, 1.1, (len(verts), 1))
        out.append((verts, faces, np.clip(color, 0.0, 1.0)))
    return out
