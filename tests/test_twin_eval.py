"""Host twin and COCO keypoint evaluation on the real val images (issue: what the device outputs, and how good)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from yolo11_pose.evaluation.evaluate import coco_eval, evaluate, load_annotated_images, poses_to_coco, write_report
from yolo11_pose.device.decode import decode
from yolo11_pose.device.preprocess import load_rgb
from yolo11_pose.device.twin import OnnxModel, Twin

from .conftest import COCO, VAL_ANN

IMAGES = COCO / "images"


def test_ground_truth_as_predictions_scores_ap_one(shared):
    gt, items = load_annotated_images(str(VAL_ANN), str(IMAGES))
    results = []
    for a in gt["annotations"]:
        if a.get("iscrowd") or a["num_keypoints"] == 0:
            continue
        results.append({"image_id": a["image_id"], "category_id": 1, "score": 1.0, "bbox": a["bbox"],
                        "keypoints": a["keypoints"]})
    r = coco_eval(gt, results, [i[0] for i in items])
    assert r["AP"] == pytest.approx(1.0) and r["AP50"] == pytest.approx(1.0)
    # and a perturbed copy scores clearly lower, so the metric is not trivially 1
    shifted = [{**p, "keypoints": [v + (15 if i % 3 == 0 else 0) for i, v in enumerate(p["keypoints"])]}
               for p in results]
    assert coco_eval(gt, shifted, [i[0] for i in items])["AP"] < 0.9


@pytest.mark.cpp
@pytest.mark.slow
def test_float_and_int8_twin_on_val_320(shared, official_onnx_320, build_p4_320):
    """One pass over the 92 val images: float AP band, int8 twin ratio, and C++ == Python decode on every image."""
    gt, items = load_annotated_images(str(VAL_ANN), str(IMAGES))
    ids = [i[0] for i in items]
    fl = OnnxModel(str(official_onnx_320))
    twin = Twin(build_p4_320)
    float_res, twin_res, checked = [], [], 0
    for iid, f, _, _ in items:
        rgb = load_rgb(f)
        float_res += poses_to_coco(iid, fl.predict(rgb, conf=0.001, max_det=100))
        outs, lb = twin.quantized(rgb)
        py = decode(outs, 320, 320, lb, conf=0.001, max_det=100, kpt_shape=twin.kpt_shape)
        cc = twin.predict(rgb, conf=0.001, max_det=100)
        assert len(cc) == len(py), f
        for a, b in zip(cc, py):
            assert a.cls == b.cls and a.score == pytest.approx(b.score, abs=1e-6)
            np.testing.assert_allclose(a.box, b.box, atol=1e-3)
            np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)
            # Rounded ints are identical except where the float sits on a .5 boundary within the float tolerance
            # (C++ decodes DFL in float32, Python in float64).
            near_half = np.abs(np.abs(b.box - np.floor(b.box)) - 0.5) < 1e-3
            assert all(x == y or h for x, y, h in zip(a.box_int, b.box_int, near_half)), (a.box, b.box)
        checked += len(cc)
        twin_res += poses_to_coco(iid, cc)
    assert checked > 1000  # conf 0.001 keeps many candidates per image: NMS and ordering get exercised
    f_ap = coco_eval(gt, float_res, ids)["AP"]
    t_ap = coco_eval(gt, twin_res, ids)["AP"]
    # Measured 0.344 for the official weights at 320 on this set (0.50 at 640, matching the published 50.0);
    # with ~140 people the set's noise is about +-0.03, so a wider band would hide a broken pipeline.
    assert 0.30 <= f_ap <= 0.39, f_ap
    # Espressif's recipe keeps ~0.81 of float here; the floor is the issue's.
    assert t_ap >= 0.75 * f_ap, (t_ap, f_ap)


@pytest.mark.cpp
def test_eval_cli_report_and_against_float(shared, official_onnx_320, build_s3_320, tmp_path):
    rows = evaluate([str(official_onnx_320), str(build_s3_320)], str(IMAGES), None, None,
                    against_float=str(official_onnx_320), max_images=12)
    assert rows[0]["AP"] > 0.95  # the float model against its own predictions
    assert 0.3 < rows[1]["AP"] < rows[0]["AP"]
    snr = rows[1]["snr_db"]
    assert set(snr) == {"box0", "score0", "box1", "score1", "box2", "score2", "kpt0", "kpt1", "kpt2"}
    assert all(5 < v < 60 for v in snr.values()), snr
    assert all(v > 60 for v in rows[0]["snr_db"].values())  # float vs itself: no noise
    write_report(rows, tmp_path / "rep", "test")
    data = json.loads((tmp_path / "rep" / "eval.json").read_text())
    assert {"model", "AP", "AP50"} <= set(data[0])
    assert (tmp_path / "rep" / "eval.png").read_bytes()[:4] == b"\x89PNG"
    assert "| model |" in (tmp_path / "rep" / "eval.md").read_text()


@pytest.mark.cpp
def test_predict_cli_json_and_overlay(shared, build_p4_320, bus_jpg, tmp_path):
    r = subprocess.run([sys.executable, "-m", "yolo11_pose.cli", "predict", "--model", str(build_p4_320),
                        "--image", str(bus_jpg), "--json", "--save-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    assert len(lines) == 3
    for p in lines:
        assert len(p["keypoints"]) == 17 and all(len(k) == 3 for k in p["keypoints"])
        assert 0.25 <= p["score"] <= 1
    from PIL import Image

    with Image.open(tmp_path / "bus.png") as im:
        assert im.size == (810, 1080)


def test_predict_bad_inputs(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "yolo11_pose.cli", "predict", *args], capture_output=True,
                              text=True, timeout=120)

    from PIL import Image

    img = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(img)
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run("--model", str(empty), "--image", str(img))
    assert r.returncode == 2 and "is a folder without model.espdl" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run("--model", str(tmp_path / "m.tflite"), "--image", str(img))
    assert r.returncode == 2 and "give a .pt checkpoint, an .onnx file, an .espdl file or a build folder" in r.stderr
    r = run("--model", str(tmp_path / "x.png"), "--image", "missing.jpg")
    assert r.returncode == 2 and "missing.jpg not found" in r.stderr
