"""Exports of a run (datasets/export.py) from a fake results.npz: VIBE-style npz, EasyMocap and instant-nvr conversions
(docs/method.md §2.4), overlay video, OBJ."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
import trimesh

from config import DataPaths
from datasets import export
from datasets.export import ExportConfig, easymocap_params, export_run, project_full, write_obj
from models.smpl import build_smpl
from utils.geometry import batch_rodrigues, crop_cam_to_full_cam

W, H = 96, 64  # frame size of the fake videos
FOCAL = 1.2 * min(W, H)


def fake_results(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Two people in video `a` (frames 0, 1, 2 and 1, 2) and one in video `b` (frame 0), rows out of order."""
    rows = [("a:1", 2), ("a:0", 1), ("b:0", 0), ("a:0", 0), ("a:1", 1), ("a:0", 2)]
    n = len(rows)
    pose = rng.normal(0.0, 0.3, (n, 72))
    pose[:, :3] = [np.pi, 0.0, 0.0] + rng.normal(0, 0.2, (n, 3))  # upright in the camera (y down)
    rotmat = batch_rodrigues(torch.as_tensor(pose).reshape(-1, 3)).reshape(n, 24, 3, 3).numpy()
    pred_cam = np.c_[rng.uniform(0.8, 1.0, n), rng.normal(0, 0.1, (n, 2))]
    bbox = np.c_[rng.uniform(30, 66, n), rng.uniform(20, 44, n), rng.uniform(30, 50, n)]
    cam_t_full = crop_cam_to_full_cam(torch.as_tensor(pred_cam), torch.as_tensor(bbox[:, :2]),
                                      torch.as_tensor(bbox[:, 2]), W, H, FOCAL).numpy()
    return {"index": np.arange(n), "track": np.array([r[0] for r in rows]),
            "frame_id": np.array([r[1] for r in rows]),
            "imgname": np.array([f"images/{r[0][0]}/{r[1] + 1:06d}.png" for r in rows]),
            "rotmat": rotmat.astype(np.float32), "pose": pose.astype(np.float32),
            "betas": rng.normal(0, 0.5, (n, 10)).astype(np.float32), "pred_cam": pred_cam.astype(np.float32),
            "cam_t": np.zeros((n, 3), np.float32), "bbox": bbox.astype(np.float32),
            "img_size": np.tile([W, H], (n, 1)), "focal_length": np.full(n, FOCAL, np.float32),
            "cam_t_full": cam_t_full.astype(np.float32)}


@pytest.fixture(scope="module")
def exported(body_root, tmp_path_factory):
    """A run dir with the fake results, frames of both videos (video a has a 4th frame nobody is in), the track
    keypoints of a:0, and everything exported."""
    root = tmp_path_factory.mktemp("export")
    res = fake_results(np.random.default_rng(0))
    run_dir = root / "run"
    run_dir.mkdir()
    np.savez(run_dir / "results.npz", **res)
    internet = root / "internet"
    for video, count in (("a", 4), ("b", 1)):
        frames = internet / "images" / video
        frames.mkdir(parents=True)
        for i in range(count):
            cv2.imwrite(str(frames / f"{i + 1:06d}.png"), np.full((H, W, 3), 40 * i + 60, np.uint8))
        (frames / "meta.json").write_text(json.dumps({"fps": 25.0, "every": 1}))
    part = np.random.default_rng(1).uniform(0, 60, (3, 49, 3))
    np.savez(internet / "a_0.npz", part=part, frame_ids=np.array([0, 1, 2]))
    cfg = ExportConfig(obj=True, verts=True, draw_keypoints=True)
    out = export_run(run_dir, cfg=cfg, data_root=body_root, internet_root=internet)
    return res, out, build_smpl(DataPaths.from_root(body_root), "neutral"), part


def smpl_vertices(smpl, rotmat: np.ndarray, betas: np.ndarray) -> np.ndarray:
    rot = torch.as_tensor(rotmat, dtype=torch.float32)
    with torch.no_grad():
        return smpl(betas=torch.as_tensor(betas, dtype=torch.float32), body_pose=rot[:, 1:],
                    global_orient=rot[:, :1], pose2rot=False).vertices.numpy()


def test_easymocap_th_by_hand() -> None:
    # root R = 90 degrees about z maps J0 = (1, 2, 3) to (-2, 1, 3); Th = t + J0 - R J0 = (3.1, 1.2, 5)
    rotmat = np.tile(np.eye(3), (1, 24, 1, 1))
    rotmat[0, 0] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    rh, th, poses = easymocap_params(rotmat, np.array([[0.1, 0.2, 5.0]]), np.array([1.0, 2.0, 3.0]))
    assert th[0] == pytest.approx([3.1, 1.2, 5.0])
    assert rh[0] == pytest.approx([0.0, 0.0, np.pi / 2]) and poses.shape == (1, 69) and not poses.any()


def test_project_full_by_hand() -> None:
    # u = f (X + tx) / (Z + tz) + W / 2 = 1000 * 0.1 / 10 + 320 = 330; v = 1000 * -0.2 / 10 + 240 = 220
    uv = project_full(np.zeros((1, 1, 3)), np.array([[0.1, -0.2, 10.0]]), np.array([1000.0]),
                      np.array([[640, 480]]))
    assert uv[0, 0] == pytest.approx([330.0, 220.0])


def test_instant_nvr_vertices_equal_smpl_plus_full_translation(exported) -> None:
    res, out, smpl, _ = exported
    rows = np.flatnonzero(res["track"] == "a:0")
    rows = rows[np.argsort(res["frame_id"][rows])]
    beta = res["betas"][rows].mean(axis=0)  # one shape per person
    expected = smpl_vertices(smpl, res["rotmat"][rows], np.tile(beta, (len(rows), 1))) + res["cam_t_full"][rows, None]
    folder = out / "a" / "instant-nvr" / "person_0"
    for j, frame in enumerate(res["frame_id"][rows]):
        params = np.load(folder / "params" / f"{frame + 1}.npy", allow_pickle=True).item()
        assert params["poses"].shape == (1, 72) and not params["poses"][0, :3].any()
        assert params["shapes"][0] == pytest.approx(beta, abs=1e-6)
        # R(Rh) SMPL(poses, beta) + Th, with the rotation from OpenCV's Rodrigues (independent of the export code)
        local = smpl_vertices(smpl, batch_rodrigues(torch.as_tensor(params["poses"].reshape(24, 3))).numpy()[None],
                              params["shapes"])[0]
        rot = cv2.Rodrigues(params["Rh"].reshape(3, 1).astype(np.float64))[0]
        from_params = local @ rot.T + params["Th"]
        assert np.abs(from_params - expected[j]).max() < 1e-4
        assert np.abs(np.load(folder / "vertices" / f"{frame + 1}.npy") - expected[j]).max() < 1e-4
    annots = np.load(folder / "annots.npy", allow_pickle=True).item()
    assert [a["ims"] for a in annots["ims"]] == [["images/a/000001.png"], ["images/a/000002.png"],
                                                 ["images/a/000003.png"]]
    assert annots["cams"]["K"][0] == pytest.approx(np.array([[FOCAL, 0, W / 2], [0, FOCAL, H / 2], [0, 0, 1]]))
    assert (folder / "images" / "a").is_dir()  # a link to the frames


def test_easymocap_files(exported) -> None:
    res, out, smpl, _ = exported
    persons = json.loads((out / "a" / "easymocap" / "smpl" / "000002.json").read_text())
    assert [p["id"] for p in persons] == [0, 1]  # both people of frame 1
    p1 = persons[1]
    assert np.array(p1["poses"]).shape == (1, 69) and np.array(p1["Rh"]).shape == (1, 3)
    rows = np.flatnonzero(res["track"] == "a:1")
    assert p1["shapes"][0] == pytest.approx(res["betas"][rows].mean(axis=0), abs=5e-4)  # 3 decimals
    row = rows[res["frame_id"][rows] == 1][0]
    rot = cv2.Rodrigues(np.array(p1["Rh"], dtype=np.float64).reshape(3, 1))[0]
    assert rot == pytest.approx(res["rotmat"][row, 0], abs=2e-3)  # Rh is the root rotation
    fs = cv2.FileStorage(str(out / "a" / "easymocap" / "intri.yml"), cv2.FILE_STORAGE_READ)
    assert fs.getNode("K_a").mat() == pytest.approx(np.array([[FOCAL, 0, W / 2], [0, FOCAL, H / 2], [0, 0, 1]]))
    assert fs.getNode("names").at(0).string() == "a"


def test_vibe_npz(exported) -> None:
    res, out, smpl, part = exported
    a0 = np.load(out / "a" / "person_0.npz")
    assert list(a0["frame_ids"]) == [0, 1, 2] and a0["verts"].shape == (3, 6890, 3)
    assert a0["joints3d"].shape == (3, 49, 3) and a0["pose"].shape == (3, 72) and a0["bboxes"].shape == (3, 4)
    assert a0["joints2d"] == pytest.approx(part)  # the input keypoints when the track file has them
    row = np.flatnonzero((res["track"] == "a:0") & (res["frame_id"] == 2))[0]
    s, tx, ty = res["pred_cam"][row].astype(float)
    cx, cy, b = res["bbox"][row].astype(float)
    # orig_cam as the original's convert_crop_cam_to_orig_img: sx = s b / W, tx' = tx + 2 (cx - W/2) / (s b)
    assert a0["orig_cam"][2] == pytest.approx([s * b / W, s * b / H, tx + 2 * (cx - W / 2) / (s * b),
                                               ty + 2 * (cy - H / 2) / (s * b)], rel=1e-5)
    placed = a0["joints3d"][2, 0] + res["cam_t_full"][row]
    assert a0["joints2d_proj"][2, 0] == pytest.approx(FOCAL * placed[:2] / placed[2] + [W / 2, H / 2], rel=1e-5)
    b0 = np.load(out / "b" / "person_0.npz")  # no track keypoint file: the projected joints, confidence 1
    assert b0["joints2d"][..., :2] == pytest.approx(b0["joints2d_proj"]) and (b0["joints2d"][..., 2] == 1).all()


def test_overlay_video_has_every_frame_at_the_source_rate(exported) -> None:
    _, out, _, _ = exported
    cap = cv2.VideoCapture(str(out / "a" / "overlay.mp4"))
    frames = []
    while (frame := cap.read())[0]:
        frames.append(frame[1])
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(25.0) and len(frames) == 4
    assert frames[0].shape == (H, W, 3)
    plain = [np.full((H, W, 3), 40 * i + 60, np.uint8) for i in range(4)]
    changed = [float((np.abs(f.astype(int) - p).max(axis=2) > 40).mean()) for f, p in zip(frames, plain, strict=True)]
    assert min(changed[:3]) > 0.02 and changed[3] < 0.005  # meshes on frames 0-2; frame 3 has nobody


def test_obj_files(exported, tmp_path) -> None:
    res, out, smpl, _ = exported
    mesh = trimesh.load(out / "a" / "obj" / "person_1" / "000003.obj", process=False)
    row = np.flatnonzero((res["track"] == "a:1") & (res["frame_id"] == 2))[0]
    expected = smpl_vertices(smpl, res["rotmat"][row:row + 1], res["betas"][row:row + 1])[0] + res["cam_t_full"][row]
    assert np.abs(mesh.vertices - expected).max() < 1e-4 and len(mesh.faces) == len(smpl.faces)
    write_obj(tmp_path / "t.obj", np.eye(3), np.array([[0, 1, 2]]))
    assert (tmp_path / "t.obj").read_text().splitlines()[-1] == "f 1 2 3"


def test_missing_results_are_reported(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="results.npz"):
        export.load_results(tmp_path)
    assert export.main([str(tmp_path)]) == 1
