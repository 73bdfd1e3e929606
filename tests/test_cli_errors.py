"""Bad input: one line naming the problem and the fix, exit code 2, nothing left behind."""
from __future__ import annotations

import shutil
from pathlib import Path

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
    assert not out.exists()  # a failed build leaves no (empty) --out folder behind


def test_quantize_setting_problems(capsys, official_onnx_320, tmp_path):
    out = tmp_path / "out"
    base = ["quantize", "--onnx", str(official_onnx_320), "--calib", str(CALIB_LIST), "--num-calib", "8",
            "--out", str(out)]
    _fails(capsys, base + ["--target", "esp32"], "--target", "invalid choice: 'esp32'", "esp32p4")
    _fails(capsys, base + ["--target", "esp32p4", "--bits", "4"], "--bits", "invalid choice: 4")
    _fails(capsys, base + ["--target", "esp32p4", "--int16-layers", "/model.0/conv/Conv,/model.99/nope"],
           "unknown layer '/model.99/nope'", "yolo11-pose inspect")
    _fails(capsys, ["quantize", "--onnx", str(tmp_path / "x.onnx"), "--target", "esp32p4", "--calib",
                    str(CALIB_LIST), "--out", str(out)], "not found", "yolo11-pose export")
    assert not out.exists()


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


# ------------------------------------------------------------------------------------------------ issue 12 rough edges
@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory) -> Path:
    """`yolo11-pose export` of the random-init YOLO11n-pose architecture at 96 (ships with Ultralytics: no download)."""
    from yolo11_pose.make.export import export_onnx

    out = tmp_path_factory.mktemp("tiny")
    export_onnx("yolo11n-pose.yaml", 96, out)
    return out / "model.onnx"


@pytest.fixture(scope="module")
def ultralytics_onnx(tmp_path_factory) -> Path:
    """The same architecture exported by Ultralytics itself (`yolo export format=onnx`): one decoded output."""
    import os

    from ultralytics import YOLO

    d = tmp_path_factory.mktemp("ultralytics-onnx")
    cwd = os.getcwd()
    os.chdir(d)  # Ultralytics writes the ONNX beside the model, i.e. here for a YAML
    try:
        return d / Path(YOLO("yolo11n-pose.yaml").export(format="onnx", imgsz=96, simplify=False, verbose=False)).name
    finally:
        os.chdir(cwd)


@pytest.fixture
def jpgs(tmp_path) -> list[Path]:
    """Three small real JPEGs."""
    from PIL import Image

    out = []
    for i, name in enumerate(("a.jpg", "b.jpg", "c.jpg")):
        p = tmp_path / "imgs" / name
        p.parent.mkdir(exist_ok=True)
        Image.new("RGB", (64 + 8 * i, 48), (40 * i, 90, 160)).save(p)
        out.append(p)
    return out


@pytest.fixture
def no_model_load(monkeypatch):
    """Fails the test if a command got as far as loading a model or exporting (the slow work)."""
    from yolo11_pose.make import build
    from yolo11_pose.device import twin

    def boom(*a, **k):
        raise AssertionError("got to the slow work before checking the arguments")

    monkeypatch.setattr(twin, "load_model", boom)
    monkeypatch.setattr(build, "export_onnx", boom)


def test_ultralytics_onnx_is_refused_with_the_fix(capsys, tmp_path, ultralytics_onnx, jpgs):
    out = tmp_path / "out"
    _fails(capsys, ["quantize", "--onnx", str(ultralytics_onnx), "--target", "esp32p4", "--calib",
                    str(jpgs[0].parent), "--num-calib", "8", "--out", str(out)],
           "was exported by Ultralytics", "yolo11-pose export --weights")
    _fails(capsys, ["predict", "--model", str(ultralytics_onnx), "--image", str(jpgs[0])],
           "was exported by Ultralytics", "yolo11-pose export")
    assert not out.exists()


def test_checkpoint_or_junk_given_as_onnx(capsys, tmp_path, jpgs):
    pt = tmp_path / "best.pt"
    pt.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)  # a torch checkpoint is a zip archive
    base = ["--target", "esp32p4", "--calib", str(jpgs[0].parent), "--num-calib", "8", "--out", str(tmp_path / "o")]
    _fails(capsys, ["quantize", "--onnx", str(pt), *base], "best.pt is a PyTorch checkpoint", "yolo11-pose export")
    junk = tmp_path / "model.onnx"
    junk.write_bytes(b"\x00\xff" * 100)
    _fails(capsys, ["quantize", "--onnx", str(junk), *base], "is not an ONNX model", "yolo11-pose export")


@pytest.mark.parametrize("flag,value,needle", [
    ("--conf", "1.5", "--conf 1.5 is out of range"), ("--conf", "-1", "--conf -1 is out of range"),
    ("--conf", "0", "between 0 and 1"), ("--iou", "1.2", "--iou 1.2 is out of range"),
    ("--kpt-thr", "-0.1", "--kpt-thr -0.1 is out of range"), ("--max-det", "0", "--max-det 0"),
])
def test_predict_thresholds_checked_before_any_work(capsys, no_model_load, jpgs, flag, value, needle):
    _fails(capsys, ["predict", "--model", "yolo11n-pose.pt", "--image", str(jpgs[0]), flag, value], needle)


def test_target_bits_and_layers_checked_before_the_export(capsys, no_model_load, tmp_path, jpgs):
    out = tmp_path / "out"
    base = ["build", "--weights", "yolo11n-pose.yaml", "--imgsz", "96", "--calib", str(jpgs[0].parent),
            "--num-calib", "8", "--out", str(out)]
    _fails(capsys, base + ["--target", "esp32c3"], "invalid choice: 'esp32c3'", "esp32p4", "esp32s3")
    _fails(capsys, base + ["--target", "esp32p4", "--bits", "4"], "invalid choice: 4")
    _fails(capsys, base + ["--target", "esp32p4", "--int16-layers", "layers.txt"],
           "--int16-layers file layers.txt not found")
    (tmp_path / "cfg").mkdir()  # a path into an existing folder is a file name too
    _fails(capsys, base + ["--target", "esp32p4", "--int16-layers", str(tmp_path / "cfg" / "layers")],
           "--int16-layers file", "not found")
    _fails(capsys, base + ["--target", "esp32p4", "--bits", "16", "--int16-layers", "/model.0/conv/Conv"],
           "only makes sense with --bits 8")
    assert not out.exists()


def test_unknown_layer_suggestions_are_inspect_names(capsys, tmp_path, tiny_onnx, jpgs):
    """Suggested names are weighted layers, which `inspect` lists under the same name (activations it shows
    fused as `.../Conv/Swish`, so ONNX's Sigmoid/Mul names would be no use)."""
    import onnx

    err = _fails(capsys, ["quantize", "--onnx", str(tiny_onnx), "--target", "esp32p4", "--calib",
                          str(jpgs[0].parent), "--num-calib", "8", "--out", str(tmp_path / "o"),
                          "--int16-layers", "/model.2/cv1/act/Sigmoid_typo"], "unknown layer", "yolo11-pose inspect")
    convs = {n.name for n in onnx.load(str(tiny_onnx)).graph.node if n.op_type == "Conv"}
    suggested = err.split("such as ", 1)[1].split(", ")
    assert len(suggested) == 3 and set(suggested) <= convs, suggested
    assert all(s.startswith("/model.2/") for s in suggested)


def test_predict_checks_every_image_before_writing(capsys, no_model_load, tmp_path, jpgs):
    save = tmp_path / "runs"
    _fails(capsys, ["predict", "--model", "m.onnx", "--image", str(jpgs[0]), str(tmp_path / "gone.jpg"),
                    str(jpgs[1]), "--save-dir", str(save)], "gone.jpg not found")
    notimg = tmp_path / "notes.jpg"
    notimg.write_text("not a picture")
    _fails(capsys, ["predict", "--model", "m.onnx", "--image", str(jpgs[0]), str(notimg), "--save-dir", str(save)],
           "notes.jpg: not a readable image")
    assert not save.exists()
    blocker = tmp_path / "file.png"
    blocker.write_bytes(b"x")
    _fails(capsys, ["predict", "--model", "m.onnx", "--image", str(jpgs[0]), "--save-dir", str(blocker)],
           "--save-dir", "is a file")


def test_predict_save_dir_keeps_inputs_with_one_stem_apart(capsys, tmp_path, tiny_onnx, jpgs):
    from yolo11_pose.cli import main
    from yolo11_pose.device.twin import overlay_names

    other = tmp_path / "other" / "a.jpg"
    other.parent.mkdir()
    other.write_bytes(jpgs[2].read_bytes())
    save = tmp_path / "runs"
    assert main(["predict", "--model", str(tiny_onnx), "--image", str(jpgs[0]), str(other), "--save-dir",
                 str(save)]) == 0
    assert sorted(p.name for p in save.iterdir()) == ["a-2.png", "a.png"]
    from PIL import Image

    assert Image.open(save / "a.png").size == (64, 48) and Image.open(save / "a-2.png").size == (80, 48)
    assert overlay_names(["x/a.jpg", "y/a.png", "a-2.jpg", "x/a.jpg"]) == \
        {"x/a.jpg": "a.png", "y/a.png": "a-2.png", "a-2.jpg": "a-2-2.png"}


def test_failed_build_removes_only_the_folders_it_created(capsys, tmp_path):
    deep = tmp_path / "a" / "b" / "c"
    _fails(capsys, ["build", "--weights", "yolo11n-pose.yaml", "--imgsz", "96", "--target", "esp32p4", "--calib",
                    str(tmp_path / "missing"), "--num-calib", "8", "--out", str(deep)], "does not exist")
    assert not (tmp_path / "a").exists()
    keep = tmp_path / "existing"
    keep.mkdir()
    _fails(capsys, ["build", "--weights", "yolo11n-pose.yaml", "--imgsz", "96", "--target", "esp32p4", "--calib",
                    str(tmp_path / "missing"), "--num-calib", "8", "--out", str(keep)], "does not exist")
    assert keep.is_dir()  # it was there before: left alone


def test_eval_max_images_zero(capsys, no_model_load, tmp_path):
    _fails(capsys, ["eval", "--model", "m.onnx", "--images", str(tmp_path), "--annotations", "a.json",
                    "--max-images", "0"], "--max-images 0", "1 or more")


def test_eval_and_predict_device_checked_before_loading(capsys, no_model_load, tmp_path, jpgs):
    import torch

    for argv in (["eval", "--model", "m.pt", "--images", str(tmp_path), "--annotations", "a.json"],
                 ["predict", "--model", "m.pt", "--image", str(jpgs[0])]):
        _fails(capsys, argv + ["--device", "tpu"], "--device 'tpu'", "cpu or cuda")
        if not torch.cuda.is_available():
            _fails(capsys, argv + ["--device", "cuda:0"], "--device cuda:0", "no CUDA device", "use cpu")


def test_unquoted_calibration_glob_gets_a_hint(capsys, tmp_path, jpgs):
    """What the shell makes of `--calib imgs/*.jpg`: one path for --calib, the rest left over."""
    err = _fails(capsys, ["quantize", "--onnx", "m.onnx", "--target", "esp32p4", "--calib", *map(str, jpgs),
                          "--out", str(tmp_path / "o")], "--calib got 3 paths", "quote it")
    assert f"--calib '{jpgs[0].parent}/*.jpg'" in err
    # Other leftovers are still a plain usage error, in one line.
    _fails(capsys, ["inspect", "x.espdl", "extra"], "unrecognized arguments: extra")
    # A single image as --calib (a glob that matched one file) is named as such.
    _fails(capsys, ["build", "--weights", "yolo11n-pose.yaml", "--imgsz", "96", "--target", "esp32p4", "--calib",
                    str(jpgs[0]), "--num-calib", "8", "--out", str(tmp_path / "o")], "is a single image", "glob")


def test_help_explains_sizes_and_thresholds(capsys):
    from yolo11_pose.cli import parser

    sub = next(a for a in parser()._actions if a.dest == "cmd").choices
    for cmd, flags in {"export": ["--imgsz"], "build": ["--imgsz"], "eval": ["--imgsz", "--max-images"],
                       "predict": ["--imgsz", "--conf", "--iou", "--kpt-thr", "--max-det"]}.items():
        helps = {a.option_strings[0]: a.help for a in sub[cmd]._actions if a.option_strings}
        for f in flags:
            assert helps[f] and len(helps[f]) > 20, (cmd, f)
    helps = {a.option_strings[0]: a.help for a in sub["predict"]._actions if a.option_strings}
    assert "0 < conf < 1" in helps["--conf"] and "multiple of 32" in helps["--imgsz"]


# ------------------------------------------------------------------------------------------------ progress
ESPPPQ_LOG = (
    "[22:12:53] ESPDL Attention Fusion Pass Running ...      Finished.\n"
    "[22:13:00] PPQ Runtime Calibration Pass Running ...       \n"
    "Calibration Progress(Phase 1):   0%|          | 0/8 [00:00<?, ?it/s]\r"
    "Calibration Progress(Phase 1):  38%|███▊      | 3/8 [00:01<00:02,  1.89it/s]")


def test_phase_of_an_esp_ppq_log():
    from yolo11_pose.progress import MARK, current_phase

    assert current_phase("") is None
    assert current_phase(ESPPPQ_LOG.split("\n")[0]) == ("ESPDL Attention Fusion Pass", "")
    assert current_phase(ESPPPQ_LOG) == ("calibration pass 1", "3/8 steps")
    done = ESPPPQ_LOG + "\rCalibration Progress(Phase 2): 100%|██████████| 8/8 [00:05<00:00,  1.36it/s]\nFinished.\n"
    assert current_phase(done) == ("calibration pass 2", "8/8 steps (then the ranges are computed)")
    later = done + "[22:13:25] PPQ Quantization Alignment Pass Running ...    Finished.\n"
    assert current_phase(later) == ("PPQ Quantization Alignment Pass", "")
    assert current_phase(later + "Network Quantization Finished.\n") == ("writing model.espdl", "")
    assert current_phase(later + f"\n{MARK}saving the graph\n") == ("saving the graph", "")


def test_phase_monitor_reports_changes_on_stderr(tmp_path):
    import os
    import time

    from yolo11_pose.progress import PhaseMonitor

    log = []
    r, w = os.pipe()
    with PhaseMonitor(lambda: "".join(log), w, "quantizing", interval=0.02, heartbeat=3600, tty=False):
        for line in ESPPPQ_LOG.split("\n") + ["Network Quantization Finished.\n"]:
            log.append(line + "\n")
            time.sleep(0.15)
    os.close(w)
    lines = os.read(r, 1 << 16).decode().splitlines()
    os.close(r)
    phases = [ln.split("]: ", 1)[1] for ln in lines]
    assert all(ln.startswith("quantizing [") for ln in lines), lines
    # One line per phase (no repeats without a heartbeat), in order.
    assert phases == ["ESPDL Attention Fusion Pass", "PPQ Runtime Calibration Pass", "calibration pass 1, 3/8 steps",
                      "writing model.espdl"], phases


@pytest.mark.slow
def test_quantize_shows_progress_on_stderr_only(capfd, tmp_path, tiny_onnx, jpgs):
    """After calibration ESP-PPQ works silently for minutes at 640: every phase shows up on stderr, never stdout."""
    from yolo11_pose.cli import main

    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(8):
        (calib / f"{i}.jpg").write_bytes(jpgs[i % 3].read_bytes())
    # a random-init model: ESP-PPQ may leave a Concat's inputs at different exponents, which the gate refuses
    assert main(["quantize", "--onnx", str(tiny_onnx), "--target", "esp32s3", "--calib", str(calib), "--num-calib",
                 "8", "--out", str(tmp_path / "q"), "--allow-unverified-ops"]) == 0
    out, err = capfd.readouterr()
    assert out.startswith("wrote ") and len(out.splitlines()) == 1, out
    phases = [ln.split("]: ", 1)[1] for ln in err.replace("\r", "\n").splitlines() if ln.startswith("quantizing [")]
    assert any(p.startswith("calibration pass 1") for p in phases), err
    assert "writing model.espdl" in phases and any("model.native" in p for p in phases), phases


def test_qat_epochs_and_lr_checked_before_the_export(capsys, no_model_load, tmp_path, jpgs):
    out = tmp_path / "out"
    base = ["qat", "--weights", "yolo11n-pose.yaml", "--imgsz", "96", "--target", "esp32s3", "--calib",
            str(jpgs[0].parent), "--num-calib", "8", "--out", str(out)]
    _fails(capsys, base + ["--epochs", "0"], "--epochs 0", "passes over the calibration images")
    _fails(capsys, base + ["--lr", "5"], "--lr 5", "between 0 and 1")
    _fails(capsys, base + ["--device", "tpu"], "--device 'tpu'", "cpu or cuda")
    assert not out.exists()


def test_progress_shows_a_phase_that_began_and_ended_between_two_looks(tmp_path):
    """A small model's calibration can start and finish within one poll: the non-terminal log still names it."""
    from yolo11_pose.progress import MARK, PhaseMonitor

    log = ["Calibration Progress(Phase 1): 100%|####| 2/2 [00:00<00:00]\r[10:00:00] PPQ Parameter Quantization Pass "
           "Running ... \n"]
    out = tmp_path / "err.txt"
    with open(out, "w") as f:
        mon = PhaseMonitor(lambda: "".join(log), f.fileno(), "quantizing", tty=False)
        mon._poll()
        log.append(f"{MARK}first\n{MARK}second\n")
        mon._poll()
    lines = [ln.split("]: ", 1)[1] for ln in out.read_text().splitlines()]
    assert [ln.split(",")[0] for ln in lines] == ["calibration pass 1", "PPQ Parameter Quantization Pass", "first",
                                                  "second"], lines
