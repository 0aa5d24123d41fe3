"""pipelines.batch (run_on_internet.sh --batch): the list of videos, parallel runs of the single-video command,
resume per video, the summary table with one-line failure reasons. The single-video command is a stub here (the
real one is tested end to end in test_internet_pipeline.py)."""
from __future__ import annotations

import json
import stat

import pytest

from pipelines import batch
from utils.video import video_names

# writes what run_on_internet.sh leaves in OUT/NAME (frames, frames.csv, metrics.json), counts its calls, and fails
# for a video called bad*; args: VIDEO --out OUT --expname NAME [options] [--resume] -- [dynaboa options]
STUB = """#!/usr/bin/env bash
set -e
video=$1; out=$3; name=$5; exp=$out/$name
mkdir -p "$out"; echo "args: $*" >> "$exp.calls"
case "$(basename "$video")" in bad*) echo "INFO starting"; echo "ERROR: no person found in $name" >&2; exit 1 ;; esac
mkdir -p "$exp/input/images/$name"
for i in 1 2 3; do touch "$exp/input/images/$name/00000$i.png"; done
touch "$exp/input/images/$name/meta.json"
printf 'index,imgname,track\\n0,a,%s_0\\n1,b,%s_0\\n2,b,%s_1\\n' "$name" "$name" "$name" > "$exp/frames.csv"
echo '{}' > "$exp/metrics.json"
"""


@pytest.fixture()
def stub(tmp_path):
    path = tmp_path / "stub.sh"
    path.write_text(STUB)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def make_videos(folder, names):
    folder.mkdir()
    for name in names:
        (folder / name).write_bytes(b"not decoded by the stub")
    (folder / "notes.txt").write_text("not a video")
    return folder


def test_batch_runs_each_video_resumes_and_reports(tmp_path, stub, capsys):
    videos = make_videos(tmp_path / "in", ["a.mp4", "b.mov", "bad.mp4"])
    out = tmp_path / "out"
    argv = [str(videos), "--script", stub, "--batch-dir", str(out), "--jobs", "2", "--", "--max-frames", "5"]
    assert batch.main(argv) == 1  # one video failed
    rows = {r["video"]: r for r in json.loads((out / "summary.json").read_text())}
    assert rows["a"]["frames"] == 3 and rows["a"]["people"] == 2 and rows["a"]["status"] == "done"
    assert rows["b"]["status"] == "done" and rows["a"]["seconds_per_frame"] > 0
    assert rows["bad"]["status"] == "failed: ERROR: no person found in bad"
    table = capsys.readouterr().out
    assert "| a | 3 | 2 |" in table and "| bad | 0 | 0 |  | failed: ERROR: no person found in bad |" in table
    calls = (out / "videos" / "a.calls").read_text()
    assert "--max-frames 5 --threads" in calls and "--resume" not in calls
    # rerun: finished videos are kept, the failed one is tried again and continues its experiment (--resume; an
    # experiment is a folder with the script's manifest, datasets/experiment.py)
    (out / "videos" / "bad").mkdir()
    (out / "videos" / "bad" / ".dynaboa_manifest.json").write_text('{"kind": "video"}')
    assert batch.main(argv) == 1
    assert (out / "videos" / "a.calls").read_text() == calls
    assert (out / "videos" / "bad.calls").read_text().count("--resume") == 1


def test_list_file_names_and_bad_input(tmp_path, capsys):
    make_videos(tmp_path / "in", ["x.mp4", "y.mp4"])
    listing = tmp_path / "list.txt"
    listing.write_text("# clips\nin/x.mp4\n\nin/y.mp4\nin/x.mp4\n")
    videos = batch.list_videos(listing)
    assert [v.name for v in videos] == ["x.mp4", "y.mp4", "x.mp4"]
    assert video_names(videos) == ["x", "y", "x-2"]
    assert [v.name for v in batch.list_videos(tmp_path / "in")] == ["x.mp4", "y.mp4"]
    with pytest.raises(ValueError, match="neither a folder nor a list"):
        batch.list_videos(tmp_path / "absent")
    listing.write_text("in/missing.mp4\n")
    assert batch.main([str(listing), "--script", "s", "--batch-dir", str(tmp_path / "o")]) == 2
    assert "not found: " in capsys.readouterr().err
