"""The .espdl executor against what ESP-DL itself computes, against the vendor's layout code, and on hostile files.

The reference here is never the executor's own code: ESP-DL 3.3.9's C kernels' outputs for Espressif's published
files (shared/data/espdl-outputs), those files' published detections and AP, ESP-PPQ's own filter-layout function,
and rounding rules worked out by hand from ESP-DL's C sources.
"""
from __future__ import annotations

import hashlib
import json
import signal
import struct

import numpy as np
import pytest

from tests.conftest import REFERENCE_ESPDL, SHARED, require_shared

OUTPUTS = SHARED / "data" / "espdl-outputs"
NAMES = ("box0", "box1", "box2", "score0", "score1", "score2", "kpt0", "kpt1", "kpt2")
REF_FILES = {f"{chip}_{v}": REFERENCE_ESPDL / chip / f"coco_pose_yolo11n_pose_s8_{v}.espdl"
             for chip in ("p4", "s3") for v in ("v1", "v2")}
CHIP = {"p4": "esp32p4", "s3": "esp32s3"}


def _manifest() -> list[dict]:
    require_shared(OUTPUTS / "manifest.json", *REF_FILES.values())
    return json.loads((OUTPUTS / "manifest.json").read_text())


@pytest.fixture(scope="module")
def executors():
    from yolo11_pose.espdl.executor import Executor

    _manifest()
    return {k: Executor(p, target=CHIP[k[:2]]) for k, p in REF_FILES.items()}


# ------------------------------------------------------------------------------------------ rounding rules
def test_shift_round_follows_espdl_c_rules():
    """Expected values worked out by hand from dl_tool.cpp shift_and_round_half_even / _half_up."""
    from yolo11_pose.espdl.executor import shift_round

    v = np.array([5, 7, -5, -7, 6, -6, 3, -3, 1, -1])
    assert shift_round(v, 1, "half_even").tolist() == [2, 4, -2, -4, 3, -3, 2, -2, 0, 0]
    assert shift_round(v, 1, "half_up").tolist() == [3, 4, -2, -3, 3, -3, 2, -1, 1, 0]
    assert shift_round(np.array([10, -10, 12]), 2, "half_even").tolist() == [2, -2, 3]  # 2.5, -2.5, 3.0
    assert shift_round(np.array([10, -10, 12]), 2, "half_up").tolist() == [3, -2, 3]
    assert shift_round(np.array([3, -3]), -2, "half_even").tolist() == [12, -12]  # non-positive: left shift
    per_channel = shift_round(np.array([[5, 5]]), np.array([1, 2]), "half_even")
    assert per_channel.tolist() == [[2, 1]]  # 2.5 -> 2, 1.25 -> 1


def test_round_float_half_up_is_floorf_of_double_sum():
    """ESP32-S3: (int)floorf(value + 0.5) with a double 0.5: 0.49999997f rounds to 1 there, like the chip."""
    from yolo11_pose.espdl.executor import round_float

    x = np.array([0.5, 1.5, -0.5, -1.5, 2.4999998, np.nextafter(np.float32(0.5), np.float32(0))], np.float32)
    assert round_float(x, "half_up").tolist() == [1, 2, 0, -1, 2, 1]
    assert round_float(x, "half_even").tolist() == [0, 2, -0, -2, 2, 0]


# ------------------------------------------------------------------------------------------ layouts
@pytest.mark.parametrize("n,depthwise,bits", [(48, False, 8), (51, False, 8), (5, False, 8), (20, False, 16),
                                               (64, True, 8), (51, True, 8), (12, True, 16)])
def test_unpack_filter_inverts_esp_ppq_layout(n, depthwise, bits):
    """ESP-PPQ's own ResetParamLayoutPattern packs a random filter; the executor's unpacking gets it back."""
    import torch
    from esp_ppq.core import TargetPlatform
    from esp_ppq.parser.espdl.espdl_typedef import EspQuantType
    from esp_ppq.parser.espdl.export_patterns import ResetParamLayoutPattern

    from yolo11_pose.espdl.executor import unpack_filter

    c = 1 if depthwise else 7
    w = torch.randint(-128, 128, (n, c, 3, 3), generator=torch.Generator().manual_seed(n))
    qt = EspQuantType.S8 if bits == 8 else EspQuantType.S16
    platform = TargetPlatform.ESPDL_INT8 if bits == 8 else TargetPlatform.ESPDL_INT16
    packed, layout = ResetParamLayoutPattern().reset_conv_filter_layout(w, qt, n if depthwise else 1, platform)
    got = unpack_filter(packed.numpy(), str(layout.value if hasattr(layout, "value") else layout), depthwise,
                        16 if bits == 8 else 8)
    assert np.array_equal(got, w.permute(0, 2, 3, 1).numpy())


# ------------------------------------------------------------------------------------------ ESP-DL's own outputs
def _cases():
    if not (OUTPUTS / "manifest.json").is_file():
        return ["missing"]
    return [e["file"] for e in json.loads((OUTPUTS / "manifest.json").read_text())]


@pytest.mark.parametrize("archive", _cases())
def test_reproduces_espdl_c_kernels_bit_for_bit(archive, executors):
    """Every output value ESP-DL 3.3.9's C kernels computed for Espressif's four files on three images."""
    entry = next(e for e in _manifest() if e["file"] == archive)
    sums = dict(line.split()[::-1] for line in (OUTPUTS / "SHA256SUMS").read_text().splitlines() if line.strip())
    assert hashlib.sha256((OUTPUTS / archive).read_bytes()).hexdigest() == sums[archive]
    key = archive[:5]
    assert executors[key].rounding == entry["rounding"]
    d = np.load(OUTPUTS / archive)
    outs = executors[key].run(d["input"])
    for name in NAMES:
        q, e = outs[name]
        assert e == int(d[f"{name}_exponent"]), name
        assert q.dtype == np.int8 and q.shape == d[name].shape, name
        diff = int((q != d[name]).sum())
        assert diff == 0, f"{archive} {name}: {diff} of {q.size} values differ from ESP-DL's kernels"


@pytest.mark.parametrize("archive", ["p4_v1_esp-dl-bus.npz", "s3_v2_esp-dl-bus.npz"])
def test_gemm_convolutions_reproduce_espdl_c_kernels(archive):
    """`--device cuda` runs convolutions as float64 GEMMs (no cuDNN algorithm is exact); the same code on the CPU
    must give ESP-DL's outputs value for value, with both chips' rounding rules."""
    from yolo11_pose.espdl.executor import Executor

    _manifest()
    key = archive[:5]
    d = np.load(OUTPUTS / archive)
    outs = Executor(REF_FILES[key], target=CHIP[key[:2]], gemm_device="cpu").run(d["input"])
    for name in NAMES:
        diff = int((outs[name][0] != d[name]).sum())
        assert diff == 0, f"{archive} {name}: {diff} of {d[name].size} values differ from ESP-DL's kernels"


def _iou(a, b) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_espressif_files_find_the_people_on_their_bus_image():
    """Espressif's README (P4 QAT file, score 0.25, NMS 0.7): four people with these boxes. Their device decoded the
    JPEG with its own decoder, so pixels, and the weak fourth detection's score, differ slightly from ours."""
    from yolo11_pose.device.preprocess import load_rgb
    from yolo11_pose.device.twin import Twin

    _manifest()
    bus = SHARED / "data" / "samples" / "esp-dl-bus.jpg"
    published = [([111, 202, 172, 429], 0.88), ([26, 198, 123, 452], 0.88), ([334, 197, 404, 436], 0.85),
                 ([0, 278, 36, 436], 0.38)]
    rgb = load_rgb(bus)
    for key, path in REF_FILES.items():
        poses = Twin(path, target=CHIP[key[:2]]).predict(rgb, conf=0.25, iou=0.7)
        main = [p for p in poses if p.score >= 0.5]
        assert len(main) == 3, (key, [(p.box.tolist(), p.score) for p in poses])
        for box, score in published[:3]:
            best = max(main, key=lambda p: _iou(p.box, box))
            # the scores are those of the P4 QAT file; the others' differ a little (their own quantization)
            tol = 0.02 if key == "p4_v2" else 0.15
            assert _iou(best.box, box) > 0.9 and abs(best.score - score) < tol, (key, box, best.box, best.score)
        if key == "p4_v2":  # the file their README ran: the fourth, half-hidden man too
            assert len(poses) == 4
            p4 = min(poses, key=lambda p: p.score)
            assert _iou(p4.box, published[3][0]) > 0.9 and abs(p4.score - published[3][1]) < 0.1


# ------------------------------------------------------------------------------------------ hostile files
def _mutated(tmp_path, data: bytes, i: int, rng) -> "Path":  # noqa: F821
    b = bytearray(data)
    kind = i % 3
    if kind == 0:
        for _ in range(8):
            b[rng.integers(16, len(b))] = rng.integers(0, 256)
    elif kind == 1:
        pos = int(rng.integers(16, len(b) - 4))
        b[pos:pos + 4] = struct.pack("<I", int(rng.choice([0xFFFFFFF0, 0x7FFFFFFF, len(b) * 3, 1 << 20])))
    else:
        b = b[: int(rng.integers(12, len(b)))]
    p = tmp_path / f"m{i}.espdl"
    p.write_bytes(bytes(b))
    return p


def test_corrupt_and_truncated_files_fail_cleanly(tmp_path):
    """Random byte flips, absurd offsets and truncations of a real file: an EspdlError or a normal run, never a
    crash, a hang or an unbounded allocation (each load/run is bounded by an alarm)."""
    from yolo11_pose.espdl.reader import EspdlError
    from yolo11_pose.espdl.executor import Executor

    _manifest()
    data = REF_FILES["s3_v1"].read_bytes()
    rng = np.random.default_rng(7)
    outcomes = {"error": 0, "ran": 0}

    def alarm(*_):
        raise TimeoutError("executor hung on a corrupt file")

    old = signal.signal(signal.SIGALRM, alarm)
    try:
        for i in range(60):
            p = _mutated(tmp_path, data, i, rng)
            signal.alarm(60)
            try:
                ex = Executor(p, target="esp32s3")
                x = np.zeros(ex.input.shape, np.int8)
                ex.run(x)
                outcomes["ran"] += 1
            except EspdlError as e:
                assert "\n" not in str(e) and str(p) in str(e) or "node" in str(e), str(e)
                outcomes["error"] += 1
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, old)
    assert outcomes["error"] >= 20, outcomes  # truncations alone guarantee these


def test_unknown_operator_and_bad_lookup_table_are_named(tmp_path):
    from yolo11_pose.espdl.executor import Executor, ExecutorError, load_graph

    _manifest()
    g = load_graph(REF_FILES["p4_v1"])
    g.nodes[1].op = "Swizzle"
    with pytest.raises(ExecutorError, match=r"operator Swizzle is not known"):
        Executor(g, target="esp32p4")
    g = load_graph(REF_FILES["p4_v1"])
    lut = next(n for n in g.nodes if n.op == "Swish").attrs["lut"]
    g.consts[lut].value = g.consts[lut].value[:200]
    ex = Executor(g, target="esp32p4")
    with pytest.raises(ExecutorError, match=r"lookup table .* must hold 256"):
        ex.run(np.zeros(ex.input.shape, np.int8))
    with pytest.raises(ExecutorError, match="does not record its chip"):
        Executor(REF_FILES["p4_v1"])
    with pytest.raises(ExecutorError, match="must be int8"):
        Executor(REF_FILES["p4_v1"], target="esp32p4").run(np.zeros((1, 320, 320, 3), np.int8))


def test_predict_cli_writes_what_espdl_computes_from_the_jpeg(tmp_path):
    """End to end from the JPEG: our device preprocessing + the executor, saved by `predict --save-outputs`, equal
    the archive ESP-DL's kernels produced (input tensor included)."""
    from yolo11_pose.cli import main

    _manifest()
    bus = SHARED / "data" / "samples" / "esp-dl-bus.jpg"
    rc = main(["predict", "--model", str(REF_FILES["s3_v2"]), "--target", "esp32s3", "--image", str(bus),
               "--save-outputs", str(tmp_path), "--json"])
    assert rc == 0
    got = np.load(tmp_path / "esp-dl-bus.npz")
    ref = np.load(OUTPUTS / "s3_v2_esp-dl-bus.npz")
    assert sorted(got.files) == sorted(ref.files)
    for k in ref.files:
        assert np.array_equal(got[k], ref[k]), k


# Published in shared/data/espdl-outputs/README.md: the val-set AP of Espressif's files as ESP-DL's kernels compute it
# (conf 0.001, NMS IoU 0.7, at most 100 per image, letterbox 640).
ESPDL_AP = {"p4_v1": (0.463, 0.779, 0.511), "p4_v2": (0.469, 0.788, 0.479), "s3_v1": (0.451, 0.786, 0.462),
            "s3_v2": (0.460, 0.795, 0.460)}


@pytest.mark.parametrize("key", sorted(ESPDL_AP))
def test_eval_reproduces_the_ap_espdl_computes_for_espressif_files(key):
    from tests.conftest import COCO, VAL_ANN
    from yolo11_pose.evaluation.evaluate import evaluate

    _manifest()
    require_shared(VAL_ANN)
    (row,) = evaluate([f"{REF_FILES[key]}@{CHIP[key[:2]]}"], str(COCO / "images"), str(VAL_ANN), log=lambda *_: None)
    ap, ap50, ap75 = ESPDL_AP[key]
    assert row["images"] == 92
    assert (round(row["AP"], 3), round(row["AP50"], 3), round(row["AP75"], 3)) == (ap, ap50, ap75), row


# ------------------------------------------------------------------------------------------ shipped models
def _shipped():
    from tests.conftest import REPO

    return sorted((REPO / "models").glob("*/*.espdl"))


@pytest.mark.parametrize("path", _shipped(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_model_self_test_will_pass_on_the_chip(path):
    """The prebuilt models the pose test app embeds (416, sdkconfig.defaults) carry test values, and ESP-DL's
    semantics reproduce them with dl::Model::test()'s tolerance (int8 outputs: exactly), so the board's self-check
    can pass. The 640 models leave them out (2.2 MB of flash), as their manifests say."""
    from tests.conftest import REPO
    from yolo11_pose.espdl.executor import check_test_values

    app = (REPO / "test_apps" / "pose" / "sdkconfig.defaults").read_text()
    embedded_by_app = f"CONFIG_YOLO11_POSE_PREBUILT_{path.stem.split('-')[2]}=y" in app
    man = json.loads(path.with_name(path.name.replace(".espdl", ".manifest.json")).read_text())
    r = check_test_values(path)  # our files record their chip
    assert r["present"] == man["settings"]["export_test_values"]
    if embedded_by_app:
        assert r["present"], f"{path} has no test values (build it with --export-test-values)"
    if r["present"]:
        assert r["pass"], r["outputs"]


def test_tampered_test_values_are_caught_and_rewritten(tmp_path):
    from yolo11_pose.espdl.executor import check_test_values, embed_espdl_test_outputs, load_graph

    src = next(p for p in _shipped() if load_graph(p).test_outputs)
    g = load_graph(src)
    name, c = next(iter(g.test_outputs.items()))
    data = bytearray(src.read_bytes())
    pos = g.header_size + c.offset
    data[pos] = (data[pos] + 3) % 256  # one expected value off by 3 steps
    bad = tmp_path / "bad.espdl"
    bad.write_bytes(bytes(data))
    r = check_test_values(bad)
    assert not r["pass"] and r["outputs"][name]["differing"] == 1
    out = embed_espdl_test_outputs(bad)
    assert out["rewritten"] == [name] and out["after"]["pass"]
    assert bad.read_bytes() == src.read_bytes()


def test_int16_conv_is_exact_integer_arithmetic(tmp_path_factory, shared, monkeypatch):
    """The executor's int16 convolution (float sums where provably exact) equals exact integer arithmetic written
    out here: sum of int16 x int16 products in Python ints, plus the bias, divided by 2**shift and rounded half to
    even by Python's own Fraction rounding (ESP32-P4)."""
    from fractions import Fraction

    from tests.conftest import CALIB_LIST, WEIGHTS
    from yolo11_pose.make.build import build
    from yolo11_pose.espdl.executor import Executor
    from yolo11_pose.device.preprocess import device_input, load_rgb

    from yolo11_pose.espdl.coverage import ENV

    monkeypatch.setenv(ENV, "1")  # --bits 16 is outside the coverage gate (int16 Add, Concat, ...): opted in
    out = tmp_path_factory.mktemp("int16-96")
    build(str(WEIGHTS), 96, "esp32p4", 16, str(CALIB_LIST), 8, out, progress=False, log=lambda *_: None)
    # No int16 tables: ESP-DL 3.3.9 computes int16 Swish/Sigmoid in float and reads int16 tables only on LUT nodes,
    # which no ESP-DL output we hold covers (recipe.base_setting, quantize: int16_lut_step=-1).
    from yolo11_pose.espdl.reader import read_espdl

    m = read_espdl(out / "model.espdl")
    assert not [la.name for la in m.layers if la.op_type == "LUT" or "lut" in la.attributes]
    assert [la for la in m.layers if la.op_type == "Swish"]

    from yolo11_pose.espdl.executor import unpack_filter

    for gemm_device in (None, "cpu"):  # oneDNN convolutions, and the GEMMs that `--device cuda` runs
        ex = Executor(out / "model.espdl", gemm_device=gemm_device)
        x, _ = device_input(load_rgb(SHARED / "data" / "samples" / "esp-dl-bus.jpg"), 96, 96, ex._exp("images"), 16,
                            ex.rounding)
        env = ex.run(x[None], keep=True)
        conv = ex.graph.nodes[0]
        assert conv.op == "Conv" and conv.attrs["quant_type"] == "S16"
        c = ex.graph.consts[conv.inputs[1]]
        w = unpack_filter(c.value, c.layout, False, 8).astype(object)  # [N, kh, kw, C]
        bias = ex.graph.consts[conv.inputs[2]].value.astype(object)
        inp = np.pad(x.astype(object), ((1, 1), (1, 1), (0, 0)))
        got, out_e = env[conv.outputs[0]]
        in_e = ex._exp("images")
        rng = np.random.default_rng(1)
        for _ in range(300):  # random output positions and channels
            oy, ox, n = (int(rng.integers(0, got.shape[1])), int(rng.integers(0, got.shape[2])),
                         int(rng.integers(0, got.shape[3])))
            patch = inp[2 * oy:2 * oy + 3, 2 * ox:2 * ox + 3, :]
            acc = int((patch * w[n]).sum()) + int(bias[n])
            shift = out_e - c.exponents[n] - in_e
            want = max(-32768, min(32767, round(Fraction(acc, 2 ** shift))))
            assert int(got[0, oy, ox, n]) == want, (gemm_device, oy, ox, n)
