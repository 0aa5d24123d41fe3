"""Box, crop and keypoint transforms in the SPIN / DynaBOA conventions (OpenCV only).

A person box is a `center` (cx, cy) in full-image pixels and a `scale` with square side `h = 200 * scale` pixels.
`get_transform`/`transform`/`crop` follow the original exactly (docs/method.md §2.3, §11 item 12):
points go through `t @ [x - 1, y - 1, 1]` and are truncated toward zero (`astype(int) + 1`), and the crop takes the
integer-cornered box with zero padding outside the image. The resize matches scikit-image's
`resize(order=1, anti_aliasing=True)` (Gaussian prefilter, then bilinear with half-pixel centres); the measured
difference is in `docs/crop_vs_skimage.md`.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from utils.constants import IMG_NORM_MEAN, IMG_NORM_STD, IMG_RES

BOX_UNIT = 200.0  # pixels per unit of `scale` (SPIN convention: box side = 200 * scale)
_GAUSS_TRUNCATE = 4.0  # kernel radius in sigmas, as scipy.ndimage.gaussian_filter (used by scikit-image)


def _res_hw(res: int | Sequence[int]) -> tuple[int, int]:
    """`res` as (rows, cols); an int means a square crop."""
    if isinstance(res, (int, np.integer)):
        return int(res), int(res)
    assert len(res) == 2, res
    return int(res[0]), int(res[1])



def get_transform(center: Sequence[float], scale: float, res: int | Sequence[int], rot: float = 0) -> np.ndarray:
    """Affine map from full-image pixels to crop pixels (the original's `get_transform`).

    `t = [[res/h, 0, res (-cx/h + 0.5)], [0, res/h, res (-cy/h + 0.5)], [0, 0, 1]]` with h = 200 * scale; a non-zero
    `rot` (degrees, counter-clockwise in the picture) then rotates about the crop centre.

    Args:
        center: (cx, cy) pixels.
        scale: box side / 200.
        res: crop size, int or (rows, cols).
        rot: rotation in degrees.
    Returns:
        [3, 3] float64.
    """
    rows, cols = _res_hw(res)
    h = BOX_UNIT * scale
    t = np.array(
        [
            [cols / h, 0.0, cols * (-float(center[0]) / h + 0.5)],
            [0.0, rows / h, rows * (-float(center[1]) / h + 0.5)],
            [0.0, 0.0, 1.0],
        ]
    )
    if rot == 0:
        return t
    rad = -np.deg2rad(rot)  # the original negates to match the direction of the image rotation in `crop`
    sn, cs = np.sin(rad), np.cos(rad)
    rot_mat = np.array([[cs, -sn, 0.0], [sn, cs, 0.0], [0.0, 0.0, 1.0]])
    to_centre = np.array([[1.0, 0.0, -cols / 2], [0.0, 1.0, -rows / 2], [0.0, 0.0, 1.0]])
    from_centre = np.array([[1.0, 0.0, cols / 2], [0.0, 1.0, rows / 2], [0.0, 0.0, 1.0]])
    return from_centre @ rot_mat @ to_centre @ t


def transform(
    pt: np.ndarray | Sequence[float],
    center: Sequence[float],
    scale: float,
    res: int | Sequence[int],
    invert: bool = False,
    rot: float = 0,
) -> np.ndarray:
    """Map pixel(s) between the full image and the crop, truncating to integers as the original.

    `new = t @ [x - 1, y - 1, 1]`, returned as `new.astype(int) + 1` (truncation toward zero, so -0.5 -> 1, not 0).

    Args:
        pt: [2] or [N, 2] pixels (1-based in the original's convention).
        center, scale, res, rot: the box, as `get_transform`.
        invert: map crop pixels back to the full image.
    Returns:
        int64 array of the same shape as `pt`.
    """
    pt = np.asarray(pt, dtype=np.float64)
    assert pt.shape[-1] == 2 and pt.ndim in (1, 2), pt.shape
    t = get_transform(center, scale, res, rot=rot)
    if invert:
        t = np.linalg.inv(t)
    new = (pt - 1.0) @ t[:2, :2].T + t[:2, 2]
    return new.astype(np.int64) + 1


def _gaussian_kernel(sigma: float) -> np.ndarray:
    """1-D kernel identical to scipy.ndimage.gaussian_filter's (radius int(4 sigma + 0.5)); [1] for sigma 0."""
    if sigma <= 0:
        return np.ones(1, dtype=np.float32)
    radius = int(_GAUSS_TRUNCATE * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return (w / w.sum()).astype(np.float32)


def resize_antialiased(img: np.ndarray, res: int | Sequence[int]) -> np.ndarray:
    """Bilinear resize with scikit-image's anti-aliasing prefilter.

    When shrinking an axis by a factor f > 1 the image is first blurred with a Gaussian of sigma (f - 1) / 2 along
    it (mirror borders, as skimage's default mode), then resampled with half-pixel-centred bilinear interpolation.

    Args:
        img: [H, W, C] or [H, W], any numeric dtype.
        res: output size, int or (rows, cols).
    Returns:
        [rows, cols(, C)] float32 in the input's value range.
    """
    rows, cols = _res_hw(res)
    channels = img.shape[2:]  # OpenCV drops a single channel axis; restored at the end
    img = np.ascontiguousarray(img, dtype=np.float32)
    sigma_y = max(0.0, (img.shape[0] / rows - 1.0) / 2.0)
    sigma_x = max(0.0, (img.shape[1] / cols - 1.0) / 2.0)
    if sigma_x > 0 or sigma_y > 0:
        img = cv2.sepFilter2D(
            img, -1, _gaussian_kernel(sigma_x), _gaussian_kernel(sigma_y), borderType=cv2.BORDER_REFLECT_101
        )
    out = cv2.resize(img, (cols, rows), interpolation=cv2.INTER_LINEAR)
    return out.reshape((rows, cols) + channels)


def _crop_box(img: np.ndarray, ul: np.ndarray, br: np.ndarray) -> np.ndarray:
    """Pixels [ul, br) of `img` (x, y corners), zero outside the image; float32 [br_y - ul_y, br_x - ul_x, C]."""
    out = np.zeros((br[1] - ul[1], br[0] - ul[0]) + img.shape[2:], dtype=np.float32)
    x0, y0 = max(0, ul[0]), max(0, ul[1])
    x1, y1 = min(img.shape[1], br[0]), min(img.shape[0], br[1])
    if x1 > x0 and y1 > y0:
        out[y0 - ul[1] : y1 - ul[1], x0 - ul[0] : x1 - ul[0]] = img[y0:y1, x0:x1]
    return out


def crop(
    img: np.ndarray,
    center: Sequence[float],
    scale: float,
    res: int | Sequence[int] = (IMG_RES, IMG_RES),
    rot: float = 0,
) -> np.ndarray:
    """Crop the box and resize it, as the original's `crop` (docs/method.md §2.3).

    The box corners are the integer pixels `transform([1, 1], invert)` and `transform([res+1, res+1], invert)`;
    the part outside the image is zero. With `rot` the box is enlarged, rotated about its centre with bilinear
    interpolation and the enlargement is cut off again, as the original.

    Args:
        img: [H, W, C] (any numeric dtype, e.g. uint8 RGB).
        center: (cx, cy) pixels.
        scale: box side / 200.
        res: crop size, int or (rows, cols).
        rot: rotation in degrees, counter-clockwise in the picture.
    Returns:
        [rows, cols, C] float32 in the input's value range (not re-quantised, as the original's float crop).
    Raises:
        ValueError: when the box is smaller than one pixel.
    """
    assert img.ndim == 3, img.shape
    rows, cols = _res_hw(res)
    ul = transform([1, 1], center, scale, (rows, cols), invert=True) - 1
    br = transform([cols + 1, rows + 1], center, scale, (rows, cols), invert=True) - 1
    if np.any(br <= ul):
        raise ValueError(f"box of scale {scale} at {tuple(center)} is smaller than one pixel")
    if rot == 0:
        return resize_antialiased(_crop_box(img, ul, br), (rows, cols))
    pad = int(np.linalg.norm(br - ul) / 2 - float(br[1] - ul[1]) / 2)
    box = _crop_box(img, ul - pad, br + pad)
    h, w = box.shape[:2]
    rot_mat = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), rot, 1.0)
    box = cv2.warpAffine(box, rot_mat, (w, h), flags=cv2.INTER_LINEAR, borderValue=0).reshape(box.shape)
    if pad > 0:
        box = box[pad:-pad, pad:-pad]
    return resize_antialiased(box, (rows, cols))


def crop_to_tensor(img_rgb: np.ndarray, center: Sequence[float], scale: float, res: int = IMG_RES) -> torch.Tensor:
    """Network input: crop, scale to [0, 1] and normalise with the ImageNet mean and std.

    Args:
        img_rgb: [H, W, 3] uint8 RGB.
        center, scale: the box.
        res: crop side.
    Returns:
        [3, res, res] float32.
    """
    assert img_rgb.ndim == 3 and img_rgb.shape[2] == 3, img_rgb.shape
    patch = crop(img_rgb, center, scale, (res, res)) / 255.0
    patch = (patch - np.asarray(IMG_NORM_MEAN, np.float32)) / np.asarray(IMG_NORM_STD, np.float32)
    return torch.from_numpy(np.ascontiguousarray(patch.transpose(2, 0, 1), dtype=np.float32))


def person_crop(img_rgb: np.ndarray, center: Sequence[float], scale: float, keypoints: np.ndarray,
                res: int = IMG_RES) -> tuple[torch.Tensor, np.ndarray]:
    """The network's input for one person box: the normalised crop and the keypoints in its coordinates.

    Args:
        img_rgb: [H, W, 3] uint8 frame.
        center, scale: the box (e.g. from `utils.keypoints.keypoint_box`).
        keypoints: [J, 3] pixels + confidence; NaN entries become 0 (a missing joint has confidence 0).
        res: crop side.
    Returns:
        image [3, res, res] float32 (`crop_to_tensor`), keypoints [J, 3] float32 (`normalize_keypoints`).
    """
    kp = np.nan_to_num(np.asarray(keypoints, dtype=np.float64), nan=0.0)
    return crop_to_tensor(img_rgb, center, scale, res), normalize_keypoints(kp, center, scale, res).astype(np.float32)



def normalize_keypoints(kp: np.ndarray, center: Sequence[float], scale: float, res: int = IMG_RES) -> np.ndarray:
    """Full-image keypoints to normalised crop coordinates, as the original's `j2d_processing` (docs/method.md §2.3).

    Each joint goes to its integer crop pixel `transform(kp + 1)` and then to `2 x / res - 1` (about [-1, 1]).
    Columns after the first two (the confidence) are kept. The input is not modified.

    Args:
        kp: [J, C] with C >= 2: (x, y, ...) pixels (0-based).
        center, scale: the box.
        res: crop side.
    Returns:
        [J, C] float64, a new array.
    """
    assert kp.ndim == 2 and kp.shape[1] >= 2, kp.shape
    out = np.array(kp, dtype=np.float64, copy=True)
    out[:, :2] = 2.0 * transform(out[:, :2] + 1.0, center, scale, res) / res - 1.0
    return out



def read_image_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as RGB.

    Args:
        path: an image file OpenCV can decode (jpg, png, ...).
    Returns:
        [H, W, 3] uint8 RGB.
    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file exists but cannot be decoded as an image.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"image file not found: {path} (a frame or photo; check the data root, or extract video frames first)"
        )
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        try:  # OpenCV says nothing of why: a file that cannot be opened is not a damaged one
            path.open("rb").close()
        except OSError as err:
            raise ValueError(f"cannot read {path}: {err.strerror or err} (check its permissions)") from err
        raise ValueError(f"cannot decode {path} as an image (damaged file or unsupported format)")
    return np.ascontiguousarray(img[:, :, ::-1])
