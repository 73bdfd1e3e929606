"""Bad input: one line naming the problem and the fix, exit code 2, nothing left behind."""
from __future__ import annotations

import shutil

import pytest

from yolo11_pose.cli import main

from .conftest import CALIB_LIST, COCO, REFERENCE_ESPDL, WEIGHTS


def _fails(capsys, argv, *needles):
    code = main(argv)
    raw = capsys.readouterr().err.replace("\r", "\n").splitlines()
    # progress bars (cleared with \r) and torch/ultralytics chatter are not ours
    err = [l.strip() for l in raw if l.strip() and "it/s]" not in l and "img/s]" not in l
           and not l.startswith(("W1", "WARNING"))]
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    for n in needles:
        assert n in err[0], err[0]
    return err[0]


@pytest.fixture
def calib_dir(shared, tmp_path):
    d = tmp_path / "calib"
    d.mkdir()
    for name in ("000000000009.jpg", "000000000025.jpg", "000000000030.jpg"):
        shutil.copy(COCO / "images" / name, d / name)
    return d


def test_weights_problems(capsys, tmp_path):
    out = tmp_path / "out"
    _fails(capsys, ["export", "--weights", str(tmp_path / "nope" / "w.pt"), "--out", str(out)], "not found")
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    _fails(capsys, ["export", "--weights", str(bad), "--out", str(out)], "cannot load weights")
    _fails(capsys, ["export", "--weights", "yolo11n.yaml", "--imgsz", "96", "--out", str(out)],
           "detect model", "not a pose model")
    _fails(capsys, ["export", "--weights", str(tmp_path / "w.h5"), "--out", str(out)], ".pt checkpoint")
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("imgsz", ["100", "64", "1312"])
def test_imgsz_out_of_range(capsys, tmp_path, imgsz):
    _fails(capsys, ["export", "--weights", "yolo11n-pose.yaml", "--imgsz", imgsz, "--out", str(tmp_path)],
           f"imgsz {imgsz}", "multiple of 32")
    assert not any(tmp_path.iterdir())


def test_calibration_problems(capsys, tmp_path, calib_dir):
    out = tmp_path / "out"
    base = ["build", "--weights", "yolo11n-pose.yaml", "--imgsz", "96", "--target", "esp32p4", "--out", str(out)]
    empty = tmp_path / "empty"
    empty.mkdir()
    _fails(capsys, base + ["--calib", str(empty), "--num-calib", "8"], "holds no files")
    _fails(capsys, base + ["--calib", str(tmp_path / "missing"), "--num-calib", "8"], "does not exist")
    _fails(capsys, base + ["--calib", str(calib_dir), "--num-calib", "8"], "only 3 calibration images", "--num-calib")
    _fails(capsys, base + ["--calib", str(calib_dir), "--num-calib", "2"], "too few")
    (calib_dir / "notes.txt").write_text("hello")
    _fails(capsys, base + ["--calib", str(calib_dir), "--num-calib", "3"], "non-image", "notes.txt")
    lst = tmp_path / "list.txt"
    lst.write_text("000000000009.jpg\ngone.jpg\n")
    shutil.copy(COCO / "images" / "000000000009.jpg", tmp_path / "000000000009.jpg")
    _fails(capsys, base + ["--calib", str(lst), "--num-calib", "1"], "gone.jpg")
    # a file with an image suffix that is not an image
    junk = tmp_path / "junk"
    junk.mkdir()
    for i in range(8):
        shutil.copy(COCO / "images" / "000000000009.jpg", junk / f"{i}.jpg")
    (junk / "0.jpg").write_bytes(b"\xff\xd8 truncated")
    _fails(capsys, base + ["--calib", str(junk), "--num-calib", "8"], "0.jpg", "not a readable image")
    assert not out.exists() or not [p for p in out.iterdir() if not p.name.startswith(".")]
    assert not out.exists() or not list(out.iterdir())  # no staging folders left either


def test_quantize_setting_problems(capsys, official_onnx_320, tmp_path):
    out = tmp_path / "out"
    base = ["quantize", "--onnx", str(official_onnx_320), "--calib", str(CALIB_LIST), "--num-calib", "8",
            "--out", str(out)]
    _fails(capsys, base + ["--target", "esp32"], "unsupported target 'esp32'", "esp32p4, esp32s3")
    _fails(capsys, base + ["--target", "esp32p4", "--bits", "4"], "--bits 4", "8 or 16")
    _fails(capsys, base + ["--target", "esp32p4", "--int16-layers", "/model.0/conv/Conv,/model.99/nope"],
           "unknown layer '/model.99/nope'")
    _fails(capsys, ["quantize", "--onnx", str(tmp_path / "x.onnx"), "--target", "esp32p4", "--calib",
                    str(CALIB_LIST), "--out", str(out)], "not found", "yolo11-pose export")
    assert not out.exists() or not list(out.iterdir())


def test_output_folder_not_writable(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a regular file where a folder should be: unwritable even for root
    _fails(capsys, ["export", "--weights", "yolo11n-pose.yaml", "--imgsz", "96", "--out", str(blocker / "out")],
           "not writable", "--out")


def test_inspect_corrupt_file(capsys, shared, tmp_path):
    src = REFERENCE_ESPDL / "s3" / "coco_pose_yolo11n_pose_s8_v1.espdl"
    cut = tmp_path / "cut.espdl"
    cut.write_bytes(src.read_bytes()[:100_000])
    _fails(capsys, ["inspect", str(cut)], "truncated")
    _fails(capsys, ["inspect", str(WEIGHTS)], "yolo11n-pose.pt")
