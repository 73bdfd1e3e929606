"""`yolo11-pose quantize/build`: real weights, real calibration images, the device's view of the result."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from yolo11_pose.make.build import build
from yolo11_pose.device.decode import decode, iou_one_to_many, nchw_to_nhwc
from yolo11_pose.make.export import run_onnx
from yolo11_pose.device.preprocess import device_input, float_input, load_rgb
from yolo11_pose.make.quantize import QuantizedModel, resolve_images, select_images

from .conftest import CALIB_LIST, COCO, WEIGHTS


def _float_people(onnx_path, rgb, imgsz):
    x, lb = float_input(rgb, imgsz, imgsz)
    return decode(nchw_to_nhwc(run_onnx(onnx_path, x)), imgsz, imgsz, lb)


@pytest.mark.parametrize("fixture", ["build_p4_320", "build_s3_320"])
def test_int8_finds_the_same_people_as_float(request, fixture, official_onnx_320, bus_jpg):
    build_dir = request.getfixturevalue(fixture)
    rgb = load_rgb(bus_jpg)
    ref = _float_people(official_onnx_320, rgb, 320)
    # At 320 the float model (and Ultralytics' own predict) finds the 3 people standing in full view; the man cut by
    # the left border only appears at larger sizes.
    assert len(ref) == 3
    qm = QuantizedModel(build_dir)
    q, lb = device_input(rgb, 320, 320, qm.input["exponent"], 8, qm.rounding)
    got = decode(qm.run_device_input(q), 320, 320, lb)
    assert len(got) == len(ref)
    for r in ref:
        best = iou_one_to_many(r.box, np.stack([g.box for g in got])).max()
        assert best >= 0.7, (r.box, [g.box for g in got])


def test_manifest_records_what_went_in(build_p4_320):
    man = json.loads((build_p4_320 / "manifest.json").read_text())
    s = man["settings"]
    assert (s["target"], s["bits"], s["imgsz"], s["num_calib"]) == ("esp32p4", 8, 320, 32)
    assert man["rounding"] == "half_even"
    assert man["input"]["shape"] == [1, 320, 320, 3] and man["input"]["dtype"] == "int8"
    assert -8 <= man["input"]["exponent"] <= -6  # [0, 1] input in int8: 2^-7 is the natural choice
    assert [o["name"] for o in man["outputs"]] == ["box0", "score0", "box1", "score1", "box2", "score2",
                                                   "kpt0", "kpt1", "kpt2"]
    shapes = {o["name"]: o["shape"] for o in man["outputs"]}
    assert shapes["box0"] == [1, 40, 40, 64] and shapes["kpt2"] == [1, 10, 10, 51] and shapes["score1"] == [1, 20, 20, 1]
    assert len(man["inputs"]["calib_images"]) == 32
    assert len(man["inputs"]["onnx_sha256"]) == 64 and len(man["build_key"]["weights_sha256"]) == 64
    for pkg in ("esp-ppq", "torch", "ultralytics", "onnx"):
        assert man["versions"][pkg]
    assert man["espdl_bytes"] == (build_p4_320 / "model.espdl").stat().st_size
    assert (build_p4_320 / "model.espdl").read_bytes()[:4] == b"EDL2"


def test_s3_rounds_half_up(build_s3_320):
    man = json.loads((build_s3_320 / "manifest.json").read_text())
    assert man["rounding"] == "half_up" and man["settings"]["target"] == "esp32s3"


def test_calibration_sources_and_selection(shared, tmp_path):
    listed = resolve_images(CALIB_LIST)
    assert len(listed) == 263
    folder = tmp_path / "imgs"
    folder.mkdir()
    for f in listed[:10]:
        shutil.copy(f, folder / f.name)
    assert [p.name for p in resolve_images(folder)] == sorted(p.name for p in listed[:10])
    assert len(resolve_images(str(folder / "*.jpg"))) == 10
    a = select_images(listed, 16, seed=1)
    assert a == select_images(listed, 16, seed=1)  # deterministic
    assert a != select_images(listed, 16, seed=2)
    assert len(set(a)) == 16


def test_mixed_precision_puts_named_layers_in_int16(shared, official_onnx_320, tmp_path):
    from yolo11_pose.espdl.reader import read_espdl
    from yolo11_pose.make.quantize import quantize

    heads = ["/model.23/cv4.0/cv4.0.2/Conv", "/model.23/cv4.1/cv4.1.2/Conv", "/model.23/cv4.2/cv4.2.2/Conv"]
    man = quantize(official_onnx_320, "esp32p4", 8, str(CALIB_LIST), 16, tmp_path, int16_layers=heads,
                   progress=False)
    outs = {o["name"]: o["dtype"] for o in man["outputs"]}
    assert outs["kpt0"] == outs["kpt1"] == outs["kpt2"] == "int16"
    assert outs["box0"] == outs["score0"] == "int8"
    model = read_espdl(tmp_path / "model.espdl")
    assert {o.name: o.dtype for o in model.outputs}["kpt1"].lower().endswith("int16")


def test_build_is_incremental(shared, tmp_path, bus_jpg, monkeypatch):
    from yolo11_pose.espdl.coverage import ENV

    # a random-init model: ESP-PPQ may leave a Concat's inputs at different exponents, and its ESP32-S3 output
    # scales can need more than the 20-bit accumulator lane; both refused unless opted in (this test is about keys)
    monkeypatch.setenv(ENV, "1")
    calib = tmp_path / "calib"
    calib.mkdir()
    for f in resolve_images(CALIB_LIST)[:8]:
        shutil.copy(f, calib / f.name)
    logs = []
    kw = dict(target="esp32s3", bits=8, calib=str(calib), num_calib=8, out_dir=tmp_path / "out", progress=False,
              log=logs.append)
    _, rebuilt = build("yolo11n-pose.yaml", 96, **kw)
    assert rebuilt
    first = (tmp_path / "out" / "model.espdl").read_bytes()
    _, rebuilt = build("yolo11n-pose.yaml", 96, **kw)
    assert not rebuilt and "up to date" in logs[-1]
    # Touching a calibration image changes nothing; changing its content rebuilds.
    img = sorted(calib.iterdir())[0]
    img.touch()
    assert not build("yolo11n-pose.yaml", 96, **kw)[1]
    img.write_bytes((COCO / "images" / "000000000009.jpg").read_bytes() if img.name != "000000000009.jpg"
                    else bus_jpg.read_bytes())
    assert build("yolo11n-pose.yaml", 96, **kw)[1]
    assert build("yolo11n-pose.yaml", 128, **kw)[1]
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["settings"]["imgsz"] == 128
    assert (tmp_path / "out" / "model.espdl").read_bytes() != first


def test_error_report_tables_and_chart(shared, tmp_path):
    from yolo11_pose.make.export import export_onnx
    from yolo11_pose.make.quantize import onnx_node_names, quantize

    export_onnx(str(WEIGHTS), 96, tmp_path)
    man = quantize(tmp_path / "model.onnx", "esp32p4", 8, str(CALIB_LIST), 8, tmp_path / "q", error_report=True,
                   progress=False)
    rep = json.loads((tmp_path / "q" / "error_report.json").read_text())
    assert set(rep["outputs"]) == {"box0", "score0", "box1", "score1", "box2", "score2", "kpt0", "kpt1", "kpt2"}
    assert all(0 < v < 1 for v in rep["outputs"].values())
    names = set(onnx_node_names(tmp_path / "model.onnx"))
    lw = list(rep["layerwise"].items())
    assert len(lw) > 80 and all(k in names for k, _ in lw)  # every computing layer, by its ONNX name
    assert [v for _, v in lw] == sorted((v for _, v in lw), reverse=True)
    assert rep["graphwise"] and man["error_report"]["worst_layers"]
    md = (tmp_path / "q" / "error_report.md").read_text()
    assert "| kpt2 |" in md and lw[0][0] in md
    assert (tmp_path / "q" / "error_report.png").read_bytes()[:4] == b"\x89PNG"
