"""view.html (datasets/viewer.py): one self-contained page; headless Chromium opens it from disk, the animation plays
(the frame counter advances) and the screenshot's canvas shows the body (pixels unlike the background)."""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from datasets.export import ExportConfig, export_run
from datasets.viewer import BACKGROUND
from tests.test_animation_export import walking_results, write_run

FRAMES = 60  # 2.4 s at 25 fps: the counter cannot wrap around in the second the test lets it play


@pytest.fixture(scope="module")
def page(body_root, tmp_path_factory) -> Path:
    """The export folder of one 60-frame track (frames 30 and 31 missed), without an overlay video."""
    frames = [f for f in range(FRAMES) if f not in (30, 31)]
    run_dir, internet = write_run(tmp_path_factory.mktemp("viewer"), walking_results({"walk:0": frames}), "walk")
    return export_run(run_dir, cfg=ExportConfig(formats=("gltf",), video=False), data_root=body_root,
                      internet_root=internet) / "walk"


def page_data(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    found = re.search(r'<script type="application/json" id="dv-data">(.*?)</script>', text, re.DOTALL)
    assert found is not None
    return json.loads(found.group(1))


def test_page_embeds_everything(page) -> None:
    text = (page / "view.html").read_text(encoding="utf-8")
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", text)  # nothing to fetch
    assert "<video" not in text  # no overlay video in this export
    data = page_data(page / "view.html")
    person = data["people"][0]
    assert base64.b64decode(person["glb"]) == (page / "person_0.glb").read_bytes()
    assert (person["first"], person["last"], person["held"]) == (0, FRAMES - 1, [30, 31])
    assert data["fps"] == 25.0 and data["start"] == 0 and data["end"] == FRAMES - 1


def test_page_names_the_overlay_video_beside_it(body_root, tmp_path) -> None:
    run_dir, internet = write_run(tmp_path, walking_results({"v:0": [0, 1, 2]}), "v")
    for i in range(3):  # frames for the overlay video
        cv2.imwrite(str(internet / "images" / "v" / f"{i + 1:06d}.png"), np.full((240, 320, 3), 90, np.uint8))
    out = export_run(run_dir, cfg=ExportConfig(formats=("gltf",)), data_root=body_root, internet_root=internet) / "v"
    text = (out / "view.html").read_text(encoding="utf-8")
    assert (out / "overlay.mp4").is_file() and '<video id="video" src="overlay.mp4"' in text
    assert page_data(out / "view.html")["start"] == 0


def find_chromium() -> str | None:
    for name in (os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def run_chromium(url: str, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium on `url` with software WebGL (SwiftShader) and a 1400x900 window at scale 1."""
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("chromium not found (apt-get install chromium, or CHROMIUM=/path/to/chrome)")
    cmd = [chromium, "--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
           "--force-device-scale-factor=1", "--window-size=1400,900", "--hide-scrollbars", *args, url]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)


def test_chromium_plays_the_page_and_draws_the_body(page, tmp_path) -> None:
    url = (page / "view.html").resolve().as_uri()
    done = run_chromium(url, "--virtual-time-budget=1000", "--dump-dom")
    body = re.search(r"<body([^>]*)>", done.stdout)
    assert done.returncode == 0 and body is not None, done.stderr[-2000:]
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1)))
    assert attrs.get("ready") == "1" and "error" not in attrs, attrs
    assert int(attrs["frame"]) > int(attrs["first-frame"]) == 1  # it played: the counter advanced from frame 1
    rect = re.search(r'<canvas id="view"[^>]*data-rect="(\d+),(\d+),(\d+),(\d+)"', done.stdout)
    assert rect is not None
    left, top, width, height = (int(v) for v in rect.groups())

    shot = tmp_path / "shot.png"
    done = run_chromium(url, "--virtual-time-budget=1000", f"--screenshot={shot}")
    image = cv2.imread(str(shot))
    assert image is not None, done.stderr[-2000:]
    canvas = image[top + 4:top + height - 4, left + 4:left + width - 4].astype(int)
    background = np.array([int(BACKGROUND[i:i + 2], 16) for i in (5, 3, 1)])  # BGR
    body_pixels = (np.abs(canvas - background).max(axis=2) > 40).mean()
    assert 0.005 < body_pixels < 0.5, body_pixels  # the body covers part of the canvas, not nothing, not all
