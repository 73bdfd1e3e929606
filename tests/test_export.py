"""`yolo11-pose export`: graph shape contract and numerical agreement with Ultralytics' own decode."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import yaml

from yolo11_pose.device.decode import OUTPUT_NAMES, candidates, nchw_to_nhwc
from yolo11_pose.make.export import export_onnx, load_pose_model, run_onnx
from yolo11_pose.device.preprocess import float_input, load_rgb

from .conftest import WEIGHTS


def _yaml_model(tmp_path, base: str, kpt_shape) -> str:
    """A pose YAML from the architecture Ultralytics ships, with another keypoint layout."""
    from ultralytics.utils import ROOT

    cfg = yaml.safe_load((ROOT / "cfg" / "models" / base).read_text())
    cfg["kpt_shape"] = list(kpt_shape)
    cfg["nc"] = 1
    cfg["scale"] = "n"
    p = tmp_path / f"custom-{kpt_shape[0]}x{kpt_shape[1]}-pose.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return str(p)


def _check_graph(path, imgsz: int, nc: int, nk: int):
    m = onnx.load(str(path))
    assert m.opset_import[0].version == 13
    (inp,) = m.graph.input
    assert inp.name == "images"
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim] == [1, 3, imgsz, imgsz]
    assert [o.name for o in m.graph.output] == list(OUTPUT_NAMES)
    want = {}
    for i, s in enumerate((8, 16, 32)):
        g = imgsz // s
        want |= {f"box{i}": [1, 64, g, g], f"score{i}": [1, nc, g, g], f"kpt{i}": [1, nk, g, g]}
    got = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in m.graph.output}
    assert got == want
    ops = {n.op_type for n in m.graph.node}
    # No decoding in the graph, and no dynamic shapes left for ESP-DL to choke on.
    assert not ops & {"Shape", "Gather", "NonMaxSuppression", "TopK"}, ops


def _ultralytics_dense(weights, x):
    model = load_pose_model(weights)
    with torch.no_grad():
        y = model(torch.from_numpy(x))
    y = (y[0] if isinstance(y, (list, tuple)) else y)[0].numpy().T  # (A, 4 + nc + nk)
    return y


def _compare_to_ultralytics(weights, onnx_path, x, imgsz, nc, kpt_shape):
    outs = nchw_to_nhwc(run_onnx(onnx_path, x))
    boxes, scores, classes, kpts = candidates(outs, imgsz, imgsz, None, kpt_shape)
    ref = _ultralytics_dense(weights, x)
    cx, cy, w, h = ref[:, 0], ref[:, 1], ref[:, 2], ref[:, 3]
    ref_boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    ref_scores = ref[:, 4:4 + nc]
    k, nd = kpt_shape
    ref_kpts = ref[:, 4 + nc:].reshape(-1, k, nd)
    assert boxes.shape == ref_boxes.shape
    np.testing.assert_allclose(boxes, ref_boxes, atol=2e-2 * (imgsz / 320))
    np.testing.assert_allclose(scores, ref_scores.max(1), atol=1e-4)
    np.testing.assert_array_equal(classes, ref_scores.argmax(1))
    np.testing.assert_allclose(kpts[..., :2], ref_kpts[..., :2], atol=2e-2 * (imgsz / 320))
    if nd == 3:
        np.testing.assert_allclose(kpts[..., 2], ref_kpts[..., 2], atol=1e-4)
    return boxes, scores


@pytest.mark.parametrize("imgsz", [192, 224, 320, 640])
def test_official_export_matches_ultralytics(shared, tmp_path, bus_jpg, imgsz):
    info = export_onnx(str(WEIGHTS), imgsz, tmp_path)
    assert info["kpt_shape"] == [17, 3] and info["nc"] == 1
    _check_graph(tmp_path / "model.onnx", imgsz, 1, 51)
    x, _ = float_input(load_rgb(bus_jpg), imgsz, imgsz)
    _, scores = _compare_to_ultralytics(str(WEIGHTS), tmp_path / "model.onnx", x, imgsz, 1, (17, 3))
    assert scores.max() > 0.5  # real weights on a real image: somebody is found


@pytest.mark.parametrize("base,kpt_shape,nc", [("11/yolo11-pose.yaml", (21, 3), 1),
                                               ("11/yolo11-pose.yaml", (17, 2), 1),
                                               ("v8/yolov8-pose.yaml", (17, 3), 1)])
def test_yaml_models_any_keypoint_layout(tmp_path, bus_jpg, base, kpt_shape, nc):
    weights = _yaml_model(tmp_path, base, kpt_shape)
    torch.manual_seed(0)
    info = export_onnx(weights, 96, tmp_path)
    assert tuple(info["kpt_shape"]) == kpt_shape
    _check_graph(tmp_path / "model.onnx", 96, nc, kpt_shape[0] * kpt_shape[1])
    x, _ = float_input(load_rgb(bus_jpg), 96, 96)
    torch.manual_seed(0)  # the reference model must get the same random init as the exported one
    _compare_to_ultralytics(weights, tmp_path / "model.onnx", x, 96, nc, kpt_shape)


def test_multiclass_pose_yaml(tmp_path, bus_jpg):
    from ultralytics.utils import ROOT

    cfg = yaml.safe_load((ROOT / "cfg" / "models" / "11" / "yolo11-pose.yaml").read_text())
    cfg.update(nc=3, scale="n")
    p = tmp_path / "three-class-pose.yaml"
    p.write_text(yaml.safe_dump(cfg))
    torch.manual_seed(0)
    info = export_onnx(str(p), 128, tmp_path)
    assert info["nc"] == 3
    _check_graph(tmp_path / "model.onnx", 128, 3, 51)
    x, _ = float_input(load_rgb(bus_jpg), 128, 128)
    torch.manual_seed(0)
    _compare_to_ultralytics(str(p), tmp_path / "model.onnx", x, 128, 3, (17, 3))
