"""Box, crop and keypoint transforms, checked against values worked out by hand."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.fixtures_real import real_photo
from utils import imutils
from utils.constants import IMG_NORM_MEAN, IMG_NORM_STD

REAL_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_images"

# Box used throughout: center (100, 100), scale 1 -> side h = 200, so t = [[1.12, 0, 0], [0, 1.12, 0], [0, 0, 1]]
# (224 / 200 = 1.12 and 224 * (-100 / 200 + 0.5) = 0).
C, S = (100.0, 100.0), 1.0


def test_get_transform_by_hand():
    t = imutils.get_transform(C, S, 224)
    np.testing.assert_allclose(t, [[1.12, 0, 0], [0, 1.12, 0], [0, 0, 1]])
    # center (50, 20), scale 0.5 -> h = 100: t[0, 2] = 224 * (-0.5 + 0.5) = 0, t[1, 2] = 224 * (-0.2 + 0.5) = 67.2
    np.testing.assert_allclose(imutils.get_transform((50, 20), 0.5, (224, 224))[:2, 2], [0.0, 67.2])


def test_transform_single_point_and_truncation():
    # (101, 101): t @ [100, 100] = 112 -> 112 + 1 = 113 (the crop centre in the 1-based convention)
    np.testing.assert_array_equal(imutils.transform([101, 101], C, S, 224), [113, 113])
    # (100, 100): 1.12 * 99 = 110.88 -> truncated 110 -> 111
    np.testing.assert_array_equal(imutils.transform([100, 100], C, S, 224), [111, 111])
    # x = 0.5: 1.12 * -0.5 = -0.56 truncates toward zero to 0 -> 1 (flooring would give 0)
    # x = -1: 1.12 * -2 = -2.24 -> -2 -> -1
    np.testing.assert_array_equal(imutils.transform([0.5, -1.0], C, S, 224), [1, -1])


def test_transform_batch_equals_loop_and_inverse_corners():
    pts = np.random.default_rng(0).uniform(-50, 300, size=(20, 2))
    batch = imutils.transform(pts, C, S, 224)
    assert batch.shape == (20, 2) and batch.dtype == np.int64
    np.testing.assert_array_equal(batch, np.stack([imutils.transform(p, C, S, 224) for p in pts]))
    # crop corners: inv t @ [0, 0] = 0 -> 1; inv t @ [224, 224] = 200 -> 201
    np.testing.assert_array_equal(imutils.transform([[1, 1], [225, 225]], C, S, 224, invert=True), [[1, 1], [201, 201]])



def test_crop_places_known_square():
    img = np.zeros((400, 400, 3), dtype=np.uint8)
    img[50:150, 50:150] = 255  # square x, y in [50, 150)
    out = imutils.crop(img, C, S)  # box [0, 200) -> 224 px, an upscale of 1.12: no prefilter
    assert out.shape == (224, 224, 3) and out.dtype == np.float32
    # output column j samples input (j + 0.5) * 200 / 224 - 0.5: j = 55 -> 49 + 3/56 (255 * 3/56 = 13.661),
    # j = 56 -> 49 + 53/56 (255 * 53/56 = 241.339), j = 167 -> 149 + 3/56 (241.339), j = 168 -> 149 + 53/56 (13.661)
    row = out[112, :, 0]
    low, high = 255 * 3 / 56, 255 * 53 / 56
    np.testing.assert_allclose(row[[55, 56, 167, 168]], [low, high, high, low], atol=1e-3)
    assert np.flatnonzero(row > 127).tolist() == list(range(56, 168))  # 112 px = 100 * 1.12
    assert out[10, 10].max() == 0 and out[112, 112].min() == 255


def test_crop_pads_outside_image_with_zeros():
    img = np.full((100, 100, 3), 200, dtype=np.uint8)
    out = imutils.crop(img, (0.0, 0.0), 1.0)  # box [-100, 100): the upper-left quadrant is outside the image
    assert out[50, 50].max() == 0
    np.testing.assert_allclose(out[170, 170], 200)
    single = imutils.crop(img[:, :, :1], (0.0, 0.0), 1.0, res=(100, 120), rot=10)  # one channel, non-square
    assert single.shape == (100, 120, 1)


def test_crop_identity_box_and_tensor_roundtrip():
    img = np.random.default_rng(0).integers(0, 256, size=(224, 224, 3), dtype=np.uint8)
    # center (112, 112), scale 1.12 -> h = 224, t = identity: corners [0, 224), no resampling
    np.testing.assert_array_equal(imutils.crop(img, (112, 112), 1.12), img.astype(np.float32))
    tensor = imutils.crop_to_tensor(img, (112, 112), 1.12)
    assert tensor.shape == (3, 224, 224) and tensor.dtype == torch.float32
    mean, std = np.array(IMG_NORM_MEAN), np.array(IMG_NORM_STD)
    restored = (tensor.permute(1, 2, 0).numpy() * std + mean) * 255
    np.testing.assert_allclose(restored, img, atol=1e-3)


def test_crop_to_tensor_normalises_the_mean_colour_to_zero():
    img = np.empty((50, 80, 3), dtype=np.uint8)
    img[:] = np.round(np.array(IMG_NORM_MEAN) * 255)  # (124, 116, 104)
    tensor = imutils.crop_to_tensor(img, (40, 25), 0.1, res=32)  # box 20 px, inside the image
    assert tensor.shape == (3, 32, 32)
    assert tensor.abs().max() < 0.01  # |round(255 m) - 255 m| / (255 std) < 0.5 / (255 * 0.224)


def test_crop_downsampling_matches_blur_then_bilinear():
    # 4x downscale of a box: sigma = (4 - 1) / 2 = 1.5, radius int(4 * 1.5 + 0.5) = 6
    img = np.random.default_rng(1).integers(0, 256, size=(120, 120, 3), dtype=np.uint8)
    out = imutils.crop(img, (60, 60), 0.6, res=30)  # h = 120 -> corners [0, 120)
    kernel = imutils._gaussian_kernel(1.5)
    assert kernel.shape == (13,) and kernel.sum() == pytest.approx(1.0)
    blurred = cv2.sepFilter2D(img.astype(np.float32), -1, kernel, kernel, borderType=cv2.BORDER_REFLECT_101)
    np.testing.assert_allclose(out, cv2.resize(blurred, (30, 30), interpolation=cv2.INTER_LINEAR), atol=1e-4)
    assert out.std() < img.std() / 3  # the prefilter removed most of the white noise


def test_crop_rotation_moves_point_counter_clockwise():
    img = np.zeros((300, 300, 3), dtype=np.uint8)
    img[148:153, 188:193] = 255  # blob at (190, 150), 40 px right of the box centre
    out = imutils.crop(img, (150, 150), 1.5, rot=90)
    y, x = np.unravel_index(out[:, :, 0].argmax(), out.shape[:2])
    expected = imutils.transform([191, 151], (150, 150), 1.5, 224, rot=90) - 1  # 0-based crop pixel
    assert abs(x - expected[0]) <= 2 and abs(y - expected[1]) <= 2
    assert y < 112 - 20 and abs(x - 112) <= 2  # 90 deg counter-clockwise: right of centre -> above it


def test_normalize_keypoints_by_hand_and_not_in_place():
    kp = np.array([[100.0, 100.0, 0.7], [-0.5, 223.0, 0.0]])
    kp_before = kp.copy()
    out = imutils.normalize_keypoints(kp, C, S)
    np.testing.assert_array_equal(kp, kp_before)
    # joint 0: transform(101) = 113 -> 2 * 113 / 224 - 1 = 2 / 224
    # joint 1: x: 1.12 * -0.5 = -0.56 -> 0 -> 1 -> 2/224 - 1; y: 1.12 * 223 = 249.76 -> 250 -> 2 * 250 / 224 - 1
    np.testing.assert_allclose(out, [[2 / 224, 2 / 224, 0.7], [2 / 224 - 1, 500 / 224 - 1, 0.0]])



def test_read_image_rgb(tmp_path):
    bgr = np.zeros((4, 5, 3), dtype=np.uint8)
    bgr[..., 0] = 255  # blue in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "blue.png"), bgr)
    rgb = imutils.read_image_rgb(tmp_path / "blue.png")
    assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [0, 0, 255]
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        imutils.read_image_rgb(tmp_path / "missing.jpg")
    (tmp_path / "junk.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="junk.jpg"):
        imutils.read_image_rgb(tmp_path / "junk.jpg")


@pytest.mark.skipif(not REAL_IMAGES.is_dir(), reason=f"real test photos not found at {REAL_IMAGES}")
def test_crop_real_photo_is_finite_and_in_range():
    img = imutils.read_image_rgb(real_photo("lunge_pexels.jpg"))  # 667 x 1000
    out = imutils.crop(img, (333, 500), 4.5)  # 900-px box, partly outside the image: 4x downscale with padding
    assert out.shape == (224, 224, 3) and np.isfinite(out).all()
    assert out.min() >= 0 and out.max() <= 255 and out.mean() > 20
