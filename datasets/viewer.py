"""`view.html`: a page that plays a video's person animations (`person_<k>.glb`) in a browser, beside the overlay video.

The page is one file: the .glb files embedded as base64, three.js (the vendored bundle
`datasets/viewer_assets/three-viewer.min.js`, MIT, rebuilt as `datasets/viewer_assets/README.md` says) and the
player (`datasets/viewer_assets/player.js`) inlined, so it opens from the file system with no server and no network.
The overlay video, when there is one, is referenced by its relative name (`overlay.mp4` next to the page). Controls:
play / pause, a timeline over the video's frames, the frame number, and orbit / zoom / pan with the mouse from the
video's camera.
"""
from __future__ import annotations

import base64
import html
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

from datasets.animation import TrackAnimation

ASSETS = Path(__file__).resolve().parent / "viewer_assets"
BACKGROUND = "#1e2228"  # the canvas colour (the page test counts pixels that differ from it)


def viewer_config(anims: Sequence[TrackAnimation], glbs: Sequence[Path], with_video: bool) -> dict:
    """The page's data: one entry per person (embedded .glb, first / last frame, held frames) and the clock."""
    if not anims or len(anims) != len(glbs):
        raise ValueError(f"view.html needs one .glb per animation, got {len(anims)} animations, {len(glbs)} files")
    steps, rates = {a.step for a in anims}, {a.fps for a in anims}
    if len(steps) > 1 or len(rates) > 1:
        raise ValueError(f"the people of one page must share the clock, got fps {rates} and steps {steps}")
    first = anims[0]
    focal, _, height = first.camera
    people = [{"name": a.name, "first": int(a.frame_ids[0]), "last": int(a.frame_ids[-1]),
               "held": a.frame_ids[~a.detected].astype(int).tolist(),
               "glb": base64.b64encode(Path(g).read_bytes()).decode("ascii")} for a, g in zip(anims, glbs, strict=True)]
    start = 0 if with_video else min(p["first"] for p in people)
    return {"people": people, "fps": first.fps, "step": first.step, "start": start,
            "end": max(p["last"] for p in people), "yfov_deg": math.degrees(2.0 * math.atan(height / (2.0 * focal))),
            "depth": max(0.5, -float(first.root_position[0, 2])), "background": BACKGROUND, "paused": False}


def render_page(config: dict, title: str, subtitle: str, aspect: tuple[int, int], video: str | None) -> str:
    """The HTML text: the template with the data, three.js and the player inlined (one pass, nothing rescanned)."""
    video_tag = (f'<video id="video" src="{html.escape(video)}" muted playsinline preload="auto" '
                 'title="overlay video"></video>') if video else ""
    data = json.dumps(config, separators=(",", ":")).replace("</", "<\\/")
    parts = {"TITLE": html.escape(title), "SUBTITLE": html.escape(subtitle), "ASPECT": f"{aspect[0]} / {aspect[1]}",
             "BACKGROUND": BACKGROUND, "VIDEO": video_tag, "DATA": data,
             "THREE": (ASSETS / "three-viewer.min.js").read_text(encoding="utf-8"),
             "PLAYER": (ASSETS / "player.js").read_text(encoding="utf-8")}
    for name in ("THREE", "PLAYER"):
        if "</script" in parts[name].lower():
            raise ValueError(f"{name} asset holds '</script' and cannot be inlined")
    template = (ASSETS / "view.html").read_text(encoding="utf-8")
    return re.sub(r"\{\{([A-Z]+)\}\}", lambda m: parts[m.group(1)], template)


def write_viewer(path: Path, anims: Sequence[TrackAnimation], glbs: Sequence[Path], title: str,
                 video: str | None = None) -> Path:
    """Write `path` (view.html) playing `glbs` (the files of `anims`), beside `video` (a name relative to the page,
    or None); returns the path."""
    path = Path(path)
    config = viewer_config(anims, glbs, video is not None)
    _, width, height = anims[0].camera
    subtitle = (f"{len(anims)} person track(s), {config['fps']:g} fps; frames without a detection hold the last "
                "pose; drag to orbit")
    path.write_text(render_page(config, title, subtitle, (width, height), video), encoding="utf-8")
    return path
