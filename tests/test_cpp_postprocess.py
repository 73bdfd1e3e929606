"""The C++ postprocessor (host build) against the Python reference decode on real quantized head outputs."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
from yolo11_pose.device import cpp
from yolo11_pose.device.decode import OUTPUT_NAMES, decode
from yolo11_pose.device.preprocess import letterbox_geometry, load_rgb, quantize

from .conftest import COCO, WEIGHTS, require_shared, ultralytics_asset

pytestmark = pytest.mark.cpp

COCO_IMAGES = ["000000000785.jpg", "000000001000.jpg", "000000002153.jpg", "000000007386.jpg"]


def _exponent(x: np.ndarray, bits: int) -> int:
    """Per-tensor power-of-two scale that just fits the tensor's range (what a calibrated output gets)."""
    m = float(np.abs(x).max()) or 1.0
    return math.ceil(math.log2(m / (2 ** (bits - 1) - 1)))


def _quantized(outs: dict, bits: dict | None = None, rounding: str = "half_even") -> dict:
    res = {}
    for name, x in outs.items():
        b = (bits or {}).get(name, 8)
        e = _exponent(x, b)
        res[name] = (quantize(x, e, b, rounding), e)
    return res


@pytest.fixture(scope="module")
def torch_model():
    require_shared(WEIGHTS)
    from yolo11_pose.device.twin import TorchModel

    return TorchModel(str(WEIGHTS), 640)


def _images():
    imgs = [ultralytics_asset("bus.jpg"), ultralytics_asset("zidane.jpg")]
    files = sorted((COCO / "images").glob("*.jpg"))
    if not files and os.environ.get("CI"):
        pytest.fail(f"no images under {COCO / 'images'}")
    named = [COCO / "images" / n for n in COCO_IMAGES if (COCO / "images" / n).is_file()]
    return imgs + (named or files[:4])


def assert_same(py, raw, tol=1e-3):
    """Same poses in the same order; floats within tol px, identical rounded ints and visibility."""
    got = raw["poses"]
    assert len(got) == len(py), f"C++ found {len(got)} poses, Python {len(py)}"
    for i, (p, c) in enumerate(zip(py, got)):
        assert c["cls"] == p.cls, i
        assert abs(c["score"] - p.score) < 1e-6, (i, c["score"], p.score)
        np.testing.assert_allclose(c["box"], p.box, atol=tol, rtol=0, err_msg=f"pose {i} box")
        assert c["box_int"] == p.box_int, (i, c["box_int"], p.box_int)
        k = np.array(c["kpts"], np.float64)
        np.testing.assert_allclose(k[:, :2], p.keypoints[:, :2], atol=tol, rtol=0, err_msg=f"pose {i} keypoints")
        np.testing.assert_allclose(k[:, 2], p.keypoints[:, 2], atol=1e-6, rtol=0)
        assert k[:, 3:5].astype(int).tolist() == p.kpt_int, i
        assert (k[:, 5] == 1).tolist() == p.visible.tolist(), i


@pytest.mark.shared
def test_matches_reference_on_quantized_official_outputs(torch_model):
    """Official yolo11n-pose at 640, each output quantized to int8 at its own exponent (realistic int8 data)."""
    total = 0
    for path in _images():
        rgb = load_rgb(path)
        outs, lb = torch_model.raw(rgb)
        q = _quantized(outs)
        for kw in ({}, {"conf": 0.1, "iou": 0.5, "kpt_thr": 0.3, "max_det": 5}):
            py = decode(q, 640, 640, lb, **kw)
            raw = cpp.postprocess_raw(q, 640, 640, lb, **kw)
            assert_same(py, raw)
            total += len(py)
        # without a letterbox: model-input pixels, bounded by the input size
        assert_same(decode(q, 640, 640, None), cpp.postprocess_raw(q, 640, 640, None))
    assert total >= 10, "the images hold people; a decoder that finds none is broken"


@pytest.mark.shared
def test_matches_reference_with_crop_int16_and_ties(torch_model):
    rgb = load_rgb(ultralytics_asset("bus.jpg"))
    h, w = rgb.shape[:2]
    crop = (50, 100, 700, 1000)
    lb = letterbox_geometry(w, h, 640, 640, crop)
    from yolo11_pose.device.preprocess import float_input

    x, lb2 = float_input(rgb, 640, 640, crop=crop)
    assert lb2 == lb
    import torch
    from yolo11_pose.device.decode import nchw_to_nhwc

    with torch.no_grad():
        ys = torch_model.model(torch.from_numpy(x))
    outs = nchw_to_nhwc({n: y.numpy() for n, y in zip(OUTPUT_NAMES, ys)})
    # mixed precision: boxes and keypoints int16 (the precision the project's mixed builds give the head), scores int8
    bits = {n: 16 for n in OUTPUT_NAMES if not n.startswith("score")}
    q = _quantized(outs, bits, "half_up")
    py = decode(q, 640, 640, lb)
    assert len(py) >= 2
    assert_same(py, cpp.postprocess_raw(q, 640, 640, lb))
    for p in py:  # results stay inside the crop
        assert crop[0] <= p.box[0] <= p.box[2] <= crop[2] and crop[1] <= p.box[1] <= p.box[3] <= crop[3]
    # equal scores keep anchor order: flatten every score to the same value above the threshold
    tie = dict(q)
    for i in range(3):
        s, e = tie[f"score{i}"]
        tie[f"score{i}"] = (np.where(s >= 0, np.int8(10), s).astype(np.int8), e)
    assert_same(decode(tie, 640, 640, lb, max_det=50), cpp.postprocess_raw(tie, 640, 640, lb, max_det=50))
    # Pose objects from the wrapper carry the same data as the reference
    poses = cpp.postprocess(q, 640, 640, lb)
    assert [p.box_int for p in poses] == [p.box_int for p in py]


@pytest.mark.shared
def test_keypoint_shape_override_and_auto(torch_model):
    rgb = load_rgb(ultralytics_asset("zidane.jpg"))
    outs, lb = torch_model.raw(rgb)
    q = _quantized(outs)
    raw = cpp.postprocess_raw(q, 640, 640, lb)
    assert raw["kpt_shape"] == [17, 3]
    # 17 keypoints x 2 dims (no visibility): drop every third channel
    q2 = dict(q)
    for i in range(3):
        k, e = q[f"kpt{i}"]
        q2[f"kpt{i}"] = (np.ascontiguousarray(np.delete(k, np.s_[2::3], axis=3)), e)
    raw2 = cpp.postprocess_raw(q2, 640, 640, lb)
    assert raw2["kpt_shape"] == [17, 2]
    assert_same(decode(q2, 640, 640, lb), raw2)
    assert all(k[2] == 1.0 for p in raw2["poses"] for k in p["kpts"])
    with pytest.raises(cpp.CppError) as e:
        cpp.postprocess_raw(q, 640, 640, lb, kpt_shape=(17, 2))
    assert e.value.code == "invalid_argument"


@pytest.mark.slow
@pytest.mark.shared
def test_matches_reference_on_espppq_outputs(build_p4_320):
    """Real ESP-PPQ int8 outputs (esp32p4 build at 320) through the lead's host twin."""
    from yolo11_pose.device.twin import Twin

    twin = Twin(build_p4_320, post="cpp")
    found = 0
    for path in _images():
        outs, lb = twin.quantized(load_rgb(path))
        assert all(q.dtype == np.int8 for q, _ in outs.values())
        py = decode(outs, 320, 320, lb, kpt_shape=twin.kpt_shape)
        assert_same(py, cpp.postprocess_raw(outs, 320, 320, lb, kpt_shape=twin.kpt_shape))
        found += len(py)
    assert found >= 4


def _small_outputs(gw=2, gh=2, kc=51, dtype=np.int8):
    rng = np.random.default_rng(0)
    out = {}
    for i, s in enumerate((8, 16, 32)):
        h, w = gh * 32 // s, gw * 32 // s
        for name, c in (("box", 64), ("score", 1), ("kpt", kc)):
            out[f"{name}{i}"] = (rng.integers(-128, 128, (1, h, w, c)).astype(dtype), -4)
    return out


@pytest.mark.parametrize("mutate, code", [
    (lambda o: o.update(box1=(o["box1"][0][:, :, :, :63], -4)), "shape_mismatch"),
    (lambda o: o.update(kpt2=(o["kpt2"][0][:, :1], -4)), "shape_mismatch"),
    (lambda o: o.update(score0=(o["score0"][0].astype(np.int16), -4)), None),  # a dtype of its own is fine
    (lambda o: o.update(box0=(o["box0"][0], 99)), "invalid_argument"),
    (lambda o: o.update(kpt0=(o["kpt0"][0][..., :5], -4), kpt1=(o["kpt1"][0][..., :5], -4),
                        kpt2=(o["kpt2"][0][..., :5], -4)), "shape_mismatch"),
])
def test_bad_tensors_give_error_codes(mutate, code):
    o = _small_outputs()
    mutate(o)
    if code is None:
        assert cpp.postprocess_raw(o, 64, 64, conf=0.5)["status"] == "ok"
        return
    with pytest.raises(cpp.CppError) as e:
        cpp.postprocess_raw(o, 64, 64)
    assert e.value.code == code


def test_bad_arguments_are_rejected_before_or_by_cpp():
    o = _small_outputs()
    with pytest.raises(ValueError, match="quantized"):
        cpp.postprocess_raw({k: v[0].astype(np.float32) for k, v in o.items()}, 64, 64)
    with pytest.raises(ValueError, match="int8/int16"):
        cpp.postprocess_raw({k: (v[0].astype(np.int32), v[1]) for k, v in o.items()}, 64, 64)
    with pytest.raises(ValueError, match="outputs lack"):
        cpp.postprocess_raw({k: v for k, v in o.items() if k != "kpt1"}, 64, 64)
    for kw in ({"conf": 0.0}, {"conf": 1.0}, {"iou": 1.5}, {"max_det": 0}, {"kpt_thr": -0.1}):
        with pytest.raises(cpp.CppError) as e:
            cpp.postprocess_raw(o, 64, 64, **kw)
        assert e.value.code == "invalid_argument", kw
    with pytest.raises(cpp.CppError):  # 64x64 tensors declared for a 96-pixel input
        cpp.postprocess_raw(o, 96, 64)


@pytest.mark.parametrize("dtype", [np.int8, np.int16])
def test_random_tensors_match_reference(dtype):
    """Random logits exercise many candidates, NMS and clipping; C++ and Python must still agree exactly."""
    rng = np.random.default_rng(1)
    for trial in range(5):
        o = {}
        for i, s in enumerate((8, 16, 32)):
            g = 128 // s
            lo, hi = (-128, 128) if dtype == np.int8 else (-3000, 3000)
            o[f"box{i}"] = (rng.integers(lo, hi, (1, g, g, 64)).astype(dtype), -4 if dtype == np.int8 else -9)
            o[f"score{i}"] = (rng.integers(lo, hi, (1, g, g, 2)).astype(dtype), -5 if dtype == np.int8 else -10)
            o[f"kpt{i}"] = (rng.integers(lo, hi, (1, g, g, 15)).astype(dtype), -6 if dtype == np.int8 else -11)
        lb = letterbox_geometry(300 + trial * 37, 200 + trial * 11, 128, 128, (5, 3, 290, 199) if trial % 2 else None)
        kw = {"conf": 0.3 + 0.1 * trial, "iou": 0.45, "kpt_thr": 0.5, "max_det": 40}
        assert_same(decode(o, 128, 128, lb, **kw), cpp.postprocess_raw(o, 128, 128, lb, **kw))


def test_ctest_and_fuzz_run_clean():
    """The C++ unit tests and the seeded fuzz loop, under ASan/UBSan (also registered with ctest)."""
    import subprocess

    out = cpp.build()
    r = subprocess.run(["ctest", "--output-on-failure"], cwd=out, capture_output=True, text=True, check=False, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    r = subprocess.run([str(out / "yolo11_pose_fuzz"), "3000", "12345"], capture_output=True, text=True, check=False, timeout=300)
    assert r.returncode == 0 and " 0 failed" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
