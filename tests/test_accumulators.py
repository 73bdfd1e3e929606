"""ESP32-S3 20-bit accumulator lanes: the build records a bound per int8 layer, warns, and refuses the impossible."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import COCO


def _s3_graph(build_dir):
    from yolo11_pose.espdl.executor import load_graph

    return load_graph(build_dir / "model.espdl")


def test_s3_build_records_a_bound_per_int8_layer(build_s3_320, build_p4_320):
    from yolo11_pose.make.accumulators import LIMIT

    man = json.loads((build_s3_320 / "manifest.json").read_text())
    acc = man["s3_accumulators"]
    g = _s3_graph(build_s3_320)
    int8 = [nd.name for nd in g.nodes if nd.op in ("Conv", "MatMul") and nd.attrs.get("quant_type") == "S8"]
    assert sorted(acc["layers"]) == sorted(int8) and acc["limit"] == LIMIT == 1 << 19
    assert 0 < acc["worst_share"] < 1 and acc["images"] == 8
    assert "s3_accumulators" not in json.loads((build_p4_320 / "manifest.json").read_text())  # P4: 32-bit QACC


def test_bound_covers_every_running_partial_sum(build_s3_320):
    """Independent of measure(): for the worst layer on one image, walk the partial sums of a few output values in
    the kernel's order (bias first, then every product) with Python integers; none exceeds the recorded bound,
    and the bound at that position is |bias| + sum |x||w| computed here."""
    from yolo11_pose.make.accumulators import measure
    from yolo11_pose.espdl.executor import Executor, unpack_filter
    from yolo11_pose.device.preprocess import device_input, load_rgb

    ex = Executor(build_s3_320 / "model.espdl")
    img = sorted((COCO / "images").glob("*.jpg"))[0]
    x, _ = device_input(load_rgb(img), 320, 320, ex._exp("images"), 8, ex.rounding)
    peak = measure(ex, [x])
    env = ex.run(x[None], keep=True)
    g = ex.graph
    name = next(n for n in sorted(peak, key=peak.get, reverse=True)
                if next(nd for nd in g.nodes if nd.name == n).op == "Conv"
                and int(next(nd for nd in g.nodes if nd.name == n).attrs.get("group", 1)) == 1)
    nd = next(nd for nd in g.nodes if nd.name == name)
    c = g.consts[nd.inputs[1]]
    w = unpack_filter(c.value, c.layout, False, 16).astype(np.int64)  # N, kh, kw, C
    b = g.consts[nd.inputs[2]].value.reshape(-1).astype(np.int64)
    a = env[nd.inputs[0]][0][0].astype(np.int64)  # H, W, C
    pt, pl = nd.attrs["pads"][0], nd.attrs["pads"][1]
    a = np.pad(a, ((pt, nd.attrs["pads"][2]), (pl, nd.attrs["pads"][3]), (0, 0)))
    s = nd.attrs["strides"][0]
    n, kh, kw, _ = w.shape
    rng = np.random.default_rng(0)
    worst = 0
    for _ in range(6):
        oc, oy, ox = int(rng.integers(n)), int(rng.integers(a.shape[0] // s - kh)), int(rng.integers(a.shape[1] // s - kw))
        patch = a[oy * s: oy * s + kh, ox * s: ox * s + kw, :]
        run = int(b[oc])
        for p, q in zip(patch.reshape(-1).tolist(), w[oc].reshape(-1).tolist()):
            run += p * q
            worst = max(worst, abs(run))
        assert abs(int(b[oc])) + int((np.abs(patch) * np.abs(w[oc])).sum()) <= peak[name]
    assert worst <= peak[name]


def test_impossible_layers_are_refused_in_one_line(build_s3_320):
    """Deliberately narrowed cases: a bias of 2**19, and an output exponent that needs accumulators beyond the lane."""
    from yolo11_pose.make.accumulators import LIMIT, report, static_problems
    from yolo11_pose.espdl.executor import Executor
    from yolo11_pose.util import UserError

    g = _s3_graph(build_s3_320)
    assert static_problems(g) == []
    conv = next(nd for nd in g.nodes if nd.op == "Conv" and len(nd.inputs) > 2)
    bias = g.consts[conv.inputs[2]]
    bias.value = bias.value.copy()
    bias.value.reshape(-1)[0] = LIMIT
    probs = static_problems(g)
    assert len(probs) == 1 and conv.name in probs[0] and "bias" in probs[0]
    bias.value.reshape(-1)[0] = 0
    shape, dtype, exps = g.info[conv.outputs[0]]
    g.info[conv.outputs[0]] = (shape, dtype, [exps[0] + 20])  # output step 2**20 times coarser
    probs = static_problems(g)
    assert len(probs) == 1 and conv.name in probs[0] and "shift" in probs[0]
    with pytest.raises(UserError) as e:
        report(Executor(g, allow_unverified=True), [])
    assert "\n" not in str(e.value) and "ESP32-S3" in str(e.value)


def test_warning_fires_above_half_the_lane(build_s3_320, monkeypatch):
    """The same build, with the lane narrowed to 2**12 (a chip with smaller lanes): the layers over half of it are
    listed, worst first."""
    from yolo11_pose.make import accumulators
    from yolo11_pose.espdl.executor import Executor
    from yolo11_pose.device.preprocess import device_input, load_rgb

    ex = Executor(build_s3_320 / "model.espdl")
    img = sorted((COCO / "images").glob("*.jpg"))[1]
    x, _ = device_input(load_rgb(img), 320, 320, ex._exp("images"), 8, ex.rounding)
    wide = accumulators.report(ex, [x])
    assert wide["over_warn"] == [n for n, v in wide["layers"].items() if v > 0.5 * (1 << 19)]
    monkeypatch.setattr(accumulators, "LIMIT", 1 << 12)
    monkeypatch.setattr(accumulators, "static_problems", lambda g: [])
    narrow = accumulators.report(ex, [x])
    assert len(narrow["over_warn"]) > len(wide["over_warn"]) and narrow["worst_share"] > 1


def test_build_records_psram_and_warns_past_the_board(build_s3_320, monkeypatch, capfd):
    """Every build records ESP-DL's PSRAM allocation for its file; past MODEL_PSRAM_SHARE of the reference board it
    says so on stderr, naming the fix (here: the same file against a board with a quarter of its need)."""
    from yolo11_pose.espdl import memory
    from yolo11_pose.make.quantize import psram_check

    man = json.loads((build_s3_320 / "manifest.json").read_text())
    p = memory.plan(build_s3_320 / "model.espdl", "esp32s3")
    assert man["psram"]["bytes"] == p.psram_bytes and man["psram"]["reference_board"] == 8 << 20
    assert 0 < man["psram"]["share"] < memory.MODEL_PSRAM_SHARE
    assert "warning: this model needs" not in capfd.readouterr().err
    monkeypatch.setitem(memory.CHIPS, "esp32s3", memory.Chip("ESP32-S3", 512 * 1024, p.psram_bytes // 4))
    rec = psram_check(build_s3_320 / "model.espdl", "esp32s3")
    err = capfd.readouterr().err
    assert rec["share"] > 3.9 and "warning: this model needs" in err and "--int16-budget" in err
