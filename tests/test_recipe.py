"""Each step of the quantization recipes reaches ESP-PPQ and changes the quantization (small, real images).

Every test compares a step's result with the same quantization without that step, so a step that is silently
skipped (a setting flag ESP-PPQ ignores, a renamed attribute, a layer name that matches nothing) fails here.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from .conftest import CALIB_LIST, WEIGHTS

IMGSZ, NUM = 128, 16


@pytest.fixture(scope="module")
def onnx128(shared, tmp_path_factory):
    from yolo11_pose.make.export import export_onnx

    out = tmp_path_factory.mktemp("onnx128")
    export_onnx(str(WEIGHTS), IMGSZ, out)
    return out / "model.onnx"


@pytest.fixture(scope="module")
def batches(shared):
    from yolo11_pose.make.quantize import calibration_batches, resolve_images, select_images

    return calibration_batches(select_images(resolve_images(CALIB_LIST), NUM), IMGSZ, "square", progress=False)


def _quantize(onnx, batches, setting, target="esp32p4"):
    from yolo11_pose.make.recipe import quantize_graph

    return quantize_graph(onnx, target, 8, batches, setting)


def _exp(cfg) -> int:
    return int(round(math.log2(float(cfg.scale.reshape(-1)[0]))))


def _act_exponents(graph) -> dict:
    from esp_ppq.IR import QuantableOperation

    return {op.name: _exp(op.config.output_quantization_config[0]) for op in graph.operations.values()
            if isinstance(op, QuantableOperation) and op.config.output_quantization_config
            and op.config.output_quantization_config[0].scale is not None}


def _conv_params(graph) -> dict:
    from esp_ppq.IR import QuantableOperation

    return {op.name: [v.value.detach().clone() for v in op.inputs[1:] if v.is_parameter]
            for op in graph.operations.values() if isinstance(op, QuantableOperation) and op.type == "Conv"}


def _fast_setting():
    from yolo11_pose.make.recipe import FAST_CALIB, base_setting

    return base_setting(8, FAST_CALIB)


@pytest.fixture(scope="module")
def fast_graph(onnx128, batches):
    return _quantize(onnx128, batches, _fast_setting())


def test_recipe_arguments_are_checked():
    from yolo11_pose.make.recipe import check_args
    from yolo11_pose.util import UserError

    with pytest.raises(UserError, match="--recipe"):
        check_args("best", None, "cpu")
    with pytest.raises(UserError, match="between 0 and 1"):
        check_args("accurate", 10, "cpu")
    with pytest.raises(UserError, match="cpu or cuda"):
        check_args("fast", None, "tpu")


def test_calibration_method_reaches_esp_ppq_and_is_chosen_by_measurement(onnx128, batches, fast_graph):
    from yolo11_pose.make import recipe

    kl = _quantize(onnx128, batches, recipe.base_setting(8, "kl"))
    a, b = _act_exponents(fast_graph), _act_exponents(kl)
    assert sum(a[k] != b[k] for k in a) >= 3, "percentile and kl calibrated the same exponents: method ignored?"
    choice = recipe.choose_calibration(onnx128, "esp32p4", batches, methods=("kl", "minmax"), log=lambda *_: None)
    c = choice["candidates"]
    assert set(c) == {"kl", "minmax"} and all(v["nsr"] > 0 for v in c.values())
    assert choice["method"] == min(c, key=lambda k: c[k]["nsr"])


def test_clip_guard_finds_and_recalibrates_a_clipping_activation(onnx128, batches, fast_graph):
    import torch

    from yolo11_pose.make import recipe

    name = "/model.10/cv2/conv/Conv/Swish"
    cfg = fast_graph.operations[name].config.output_quantization_config[0]
    saved = cfg.scale.clone()
    xs = [torch.cat(batches)[:2]]
    assert name not in recipe.clipping_activations(fast_graph, xs)
    cfg.scale.copy_(saved / 32)  # what KL did on ESP32-S3 at 640
    try:
        assert name in recipe.clipping_activations(fast_graph, xs)
    finally:
        cfg.scale.copy_(saved)
    s = recipe.base_setting(8, "kl")
    s.quantize_activation_setting.calib_algorithm_per_layer[name] = "minmax"
    g = _quantize(onnx128, batches, s)
    assert g.operations[name].config.output_quantization_config[0].observer_algorithm == "minmax"


def test_logit_scales_are_finer(onnx128, batches, fast_graph):
    from yolo11_pose.make import recipe

    plan = recipe.make_plan("accurate", onnx128, "esp32p4", 8, batches, log=lambda *_: None,
                            steps={"calibration": False, "clip_guard": False, "bias_correct": False, "tqt": False})
    ops = plan.info["logit_scales"]["ops"]
    assert len(ops) == 3 and plan.setting.quant_config_modify
    g = _quantize(onnx128, batches, plan.setting)
    want = plan.info["logit_scales"]["exponent"]
    assert want == math.ceil(math.log2(recipe.SIGMOID_LOGIT_RANGE / 127))
    for op in ops:
        assert _exp(g.operations[op].config.output_quantization_config[0]) == want
    assert any(_exp(fast_graph.operations[op].config.output_quantization_config[0]) != want for op in ops)


def test_bias_correction_changes_biases(onnx128, batches, fast_graph):
    s = _fast_setting()
    s.bias_correct = True
    s.bias_correct_setting.collecting_device = "cpu"
    g = _quantize(onnx128, batches, s)
    before, after = _conv_params(fast_graph), _conv_params(g)
    changed = [k for k in before if len(before[k]) > 1 and not torch_equal(before[k][1], after[k][1])]
    assert len(changed) >= 10, f"bias correction changed only {len(changed)} biases"


def torch_equal(a, b) -> bool:
    return bool((a == b).all())


def test_tqt_moves_weights_or_scales(onnx128, batches, fast_graph):
    s = _fast_setting()
    s.tqt_optimization = True
    t = s.tqt_optimization_setting
    # three 1x1 head convs, one block each: ESP-PPQ re-runs the graph over every batch per block, so keep it small
    heads = [f"/model.23/cv4.{i}/cv4.{i}.2/Conv" for i in range(3)]
    t.steps, t.lr, t.block_size, t.collecting_device, t.interested_layers = 20, 1e-3, 1, "cpu", heads
    g = _quantize(onnx128, batches, s)
    w0, w1 = _conv_params(fast_graph), _conv_params(g)
    moved = [k for k in heads if not torch_equal(w0[k][0], w1[k][0])]
    assert moved, "TQT left the trained layers' weights as calibrated"
    assert all(torch_equal(w0[k][0], w1[k][0]) for k in w0 if k not in heads and "model.23" not in k)


def test_int16_budget_picks_measured_layers_within_budget(onnx128, batches):
    from yolo11_pose.make import recipe

    costs = recipe.onnx_costs(onnx128)
    total = sum(c["macs"] for c in costs.values())
    assert total > 1e8 and costs["/model.0/conv/Conv"]["macs"] == 16 * 64 * 64 * 27
    plan = recipe.make_plan("fast", onnx128, "esp32s3", 8, batches, int16_budget=0.1, log=lambda *_: None)
    info = plan.info["int16"]
    assert info["layers"] and 0 < info["mac_share"] <= 0.1
    assert all(r["gain"] > 0 for r in info["layers"])
    g = _quantize(onnx128, batches, plan.setting, "esp32s3")
    plat = recipe.int16_platform("esp32s3")
    for r in info["layers"]:
        assert g.operations[r["op"]].platform == plat
        assert g.operations[r["op"]].config.input_quantization_config[0].num_of_bits == 16
    eight = [op for op in g.operations.values() if op.type == "Conv" and op.name not in plan.int16_ops]
    assert eight and all(op.platform != plat for op in eight)


def test_malloc_limit_is_harmless():
    from yolo11_pose.make.recipe import limit_malloc_growth

    limit_malloc_growth()
    assert np.ones(3).sum() == 3


# ----------------------------------------------------------------------------------------------- fine-tuning
def _int_weights(graph) -> dict:
    """The integers the exporter writes for each Conv weight (value / power-of-two scale, rounded)."""
    from esp_ppq.IR import QuantableOperation

    out = {}
    for op in graph.operations.values():
        if isinstance(op, QuantableOperation) and op.type == "Conv":
            cfg = op.config.input_quantization_config[1]
            w = op.inputs[1].value.detach()
            s = cfg.scale.reshape([-1] + [1] * (w.dim() - 1)) if cfg.scale.numel() > 1 else cfg.scale
            out[op.name] = (w / s).round().clamp(cfg.quant_min, cfg.quant_max)
    return out


def test_finetune_moves_integer_weights_and_lowers_output_noise(onnx128, batches):
    """Label-free fine-tuning fits what it trains on: fed the 16 images twice, the 8 it measures on are among those it
    trained on (12 images at 128 px are too few to generalise, see the manifests of real builds for held-out
    figures). Its reported loss goes down, and so does the plain output noise against the float graph measured by
    the recipe's own meter (another computation than the training loss); the exported integers change."""
    import torch

    from yolo11_pose.make.export import onnx_meta
    from yolo11_pose.make.finetune import distill
    from yolo11_pose.make.recipe import OutputNoise

    g = _quantize(onnx128, batches, _fast_setting(), "esp32s3")
    xs = torch.cat(list(batches))
    twice = [xs, xs]  # distill holds out the last 8 of 32: images 8..15, also trained on (0..15, 0..7)
    meter = OutputNoise(g, [xs[8:]])
    noise0 = OutputNoise.mean(meter.measure())
    w0 = _int_weights(g)
    info = distill(g, twice, onnx_meta(onnx128)["head"], epochs=2, lr=1e-5, log=lambda *_: None)
    assert info["held_out_images"] == 8 and info["train_images"] == 24 and info["steps"] == 48
    assert info["kept"] and info["loss_after"] < info["loss_before"], info
    noise1 = OutputNoise.mean(meter.measure())
    assert noise1 < noise0, (noise0, noise1)
    w1 = _int_weights(g)
    moved = sum(int((w0[k] != w1[k]).sum()) for k in w0)
    assert moved > 100, f"only {moved} exported weight integers changed"


@pytest.mark.parametrize("target", ["esp32s3", "esp32p4"])  # per-tensor half up; per-channel half even
def test_fast_fake_quant_gives_esp_ppq_values_and_gradients(onnx128, batches, target):
    """The fine-tuning's fake quantization against ESP-PPQ's own quantization functions on a real quantized graph:
    the same outputs and the same weight gradients, value for value (int16 layers included)."""
    import torch
    from esp_ppq.executor import TorchExecutor

    from yolo11_pose.make.finetune import _graph_params, fast_fake_quant
    from yolo11_pose.make.recipe import int16_platform

    setting = _fast_setting()
    for name in ("/model.0/conv/Conv", "/model.0/conv/Conv/Swish"):  # the stem in int16, as the accurate recipe may
        setting.dispatching_table.append(name, int16_platform(target))
    g = _quantize(onnx128, batches, setting, target)
    x = torch.cat(list(batches))[:2]
    params = _graph_params(g)
    runs = []
    for fast in (False, True):
        ex = TorchExecutor(g, device="cpu")
        if fast:
            assert fast_fake_quant(ex, g) > 200
        for v in params:
            v.value.requires_grad_(True)
            v.value.grad = None
        ys = ex.forward_with_gradient(x, output_names=list(g.outputs))
        sum((y.double() ** 2).sum() for y in ys).backward()
        runs.append(([y.detach().clone() for y in ys], [v.value.grad.clone() for v in params]))
        for v in params:
            v.value.requires_grad_(False)
            v.value.grad = None
    (y0, g0), (y1, g1) = runs
    assert all(torch.equal(a, b) for a, b in zip(y0, y1))
    assert sum(int((a != 0).sum()) for a in g0) > 1000  # the gradients reach the weights...
    assert all(torch.equal(a, b) for a, b in zip(g0, g1))  # ...and are ESP-PPQ's


def test_finetune_that_makes_things_worse_is_undone(onnx128, batches):
    from yolo11_pose.make.export import onnx_meta
    from yolo11_pose.make.finetune import distill

    g = _quantize(onnx128, batches, _fast_setting(), "esp32s3")
    before = _conv_params(g)
    info = distill(g, batches, onnx_meta(onnx128)["head"], epochs=0.5, lr=0.05, log=lambda *_: None)
    assert not info["kept"] and info["loss_after"] >= info["loss_before"], info
    after = _conv_params(g)
    assert all(torch_equal(a, b) for k in before for a, b in zip(before[k], after[k]))


def test_finetune_is_a_step_of_the_accurate_recipe_and_of_qat(onnx128, batches):
    from yolo11_pose import cfg
    from yolo11_pose.make.recipe import make_plan

    off = {"calibration": False, "clip_guard": False, "logit_scales": False}
    plan = make_plan("accurate", onnx128, "esp32s3", 8, batches, steps=off, log=lambda *_: None)
    assert plan.finetune == {"epochs": cfg.ACCURATE_FINETUNE_EPOCHS, "lr": cfg.QAT_LR}
    assert make_plan("fast", onnx128, "esp32s3", 8, batches, log=lambda *_: None).finetune is None
    qat = make_plan("fast", onnx128, "esp32s3", 8, batches, finetune_epochs=2, finetune_lr=3e-5, log=lambda *_: None)
    assert qat.finetune == {"epochs": 2.0, "lr": 3e-5}
    with pytest.raises(Exception, match="--epochs"):
        make_plan("fast", onnx128, "esp32s3", 8, batches, finetune_epochs=0, log=lambda *_: None)
