"""Files every allowed ESP-DL reads right: packed dynamic MatMuls, the ESP-DL release table (`yolo11_pose.espdl.compat`),
the refusal to publish what the declared ESP-DL cannot read, and byte-reproducible builds."""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from yolo11_pose.espdl import compat
from yolo11_pose.espdl.reader import read_espdl
from yolo11_pose.espdl.inspect_report import format_text, to_json
from yolo11_pose.util import UserError

from .conftest import CALIB_LIST, REFERENCE_ESPDL, REPO, SHARED, WEIGHTS, require_shared

IMGSZ = 160  # attention over 5x5 = 25 tokens: N % 16 != 0, so the packing graph has its Slice/Concat part
NUM_CALIB = 8
ATTENTION = ("/model.10/m/m.0/attn/MatMul", "/model.10/m/m.0/attn/MatMul_1")
PACKING_OPS = {"Reshape", "Transpose", "Slice", "Concat"}


def _quantize(onnx: Path, out: Path) -> dict:
    from yolo11_pose.make.quantize import quantize

    return quantize(onnx, "esp32p4", 8, str(CALIB_LIST), NUM_CALIB, out, progress=False)


@pytest.fixture(scope="module")
def onnx160(shared, tmp_path_factory) -> Path:
    from yolo11_pose.make.export import export_onnx

    out = tmp_path_factory.mktemp("onnx160")
    export_onnx(str(WEIGHTS), IMGSZ, out)
    return out / "model.onnx"


@pytest.fixture(scope="module")
def build160(onnx160, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("compat-build")
    return out, _quantize(onnx160, out)


def _packing_chain(model, layer) -> list[str]:
    """Operator types between a MatMul's right operand and the first operator that is not part of a packing graph."""
    producer = {o: lay for lay in model.layers for o in lay.outputs}
    chain, todo = [], [layer.inputs[1]]
    while todo:
        src = producer.get(todo.pop())
        if src is not None and src.op_type in PACKING_OPS:
            chain.append(src.op_type)
            todo += [i for i in src.inputs if i in producer]
    return chain


# --- a fresh build ---------------------------------------------------------------------------------------------
def test_fresh_build_packs_dynamic_matmuls(build160):
    out, man = build160
    model = read_espdl(out / "model.espdl")
    matmuls = {lay.name: lay for lay in model.layers if lay.op_type == "MatMul"}
    assert set(ATTENTION) <= set(matmuls)
    assert not any("input1_layout" in lay.attributes for lay in model.layers)
    for name in ATTENTION:
        chain = _packing_chain(model, matmuls[name])
        # *CN -> transpose -> the N//16*16 aligned rows blocked by Reshape/Transpose, the rest sliced off and
        # concatenated after them, reshaped back: what ESP-DL's conv2d reads as a filter.
        assert chain[0] == "Reshape" and {"Transpose", "Slice", "Concat"} <= set(chain), (name, chain)
    info = compat.analyze(model)
    assert info["oldest"] == "3.2.0" and info["declared"]["reads"] and not info["unreadable"]
    assert man["esp_dl"] == {"oldest_reading_release": "3.2.0", "declared": compat.declared_range()[0],
                             "unverified_ops": []}


def test_two_builds_are_byte_identical(build160, onnx160, tmp_path):
    from yolo11_pose.make.quantize import stable_manifest

    out, man = build160
    again = _quantize(onnx160, tmp_path)
    for f in ("model.espdl", "model.native", "model.json", "model.info"):
        assert (tmp_path / f).read_bytes() == (out / f).read_bytes(), f
    assert stable_manifest(again) == stable_manifest(man)
    assert stable_manifest(json.loads((tmp_path / "manifest.json").read_text())) == stable_manifest(man)


def test_builds_are_identical_across_hash_seeds_and_thread_counts(build160, onnx160, tmp_path):
    out, man = build160
    seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    threads = "1" if os.environ.get("OMP_NUM_THREADS") == "2" else "2"  # importing Ultralytics sets 1
    env = {**os.environ, "PYTHONHASHSEED": seed, "OMP_NUM_THREADS": threads}
    r = subprocess.run([sys.executable, "-m", "yolo11_pose.cli", "quantize", "--onnx", str(onnx160), "--target",
                        "esp32p4", "--bits", "8", "--calib", str(CALIB_LIST), "--num-calib", str(NUM_CALIB),
                        "--calib-mode", man["settings"]["calib_mode"], "--out", str(tmp_path)],
                       env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-2000:]
    for f in ("model.espdl", "model.native", "model.json"):
        assert (tmp_path / f).read_bytes() == (out / f).read_bytes(), f


# --- refusal ---------------------------------------------------------------------------------------------------
def test_build_refuses_what_the_declared_esp_dl_cannot_read(shared, tmp_path, monkeypatch, capsys):
    from yolo11_pose.make import quantize as q
    from yolo11_pose.cli import main

    # Without the MatMul fix ESP-PPQ 1.3.12 writes input1_layout = "native_kn", which ESP-DL 3.3.9 does not read.
    monkeypatch.setattr(q, "espdl_export_fixes", functools.partial(q.espdl_export_fixes, packed_matmul=False))
    out = tmp_path / "out"
    rc = main(["build", "--weights", str(WEIGHTS), "--imgsz", str(IMGSZ), "--target", "esp32s3", "--bits", "8",
               "--calib", str(CALIB_LIST), "--num-calib", str(NUM_CALIB), "--out", str(out)])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]  # progress bars aside
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("error: refusing to write the model: it uses MatMul.input1_layout, "
                                               "which no known ESP-DL release (up to 3.3.9) reads"), err
    assert "^3.3.9" in err[0]
    assert not out.exists() or not any(out.iterdir())  # nothing written, not even the staging folders


def test_analysis_of_unreadable_and_too_new_files(monkeypatch):
    def model(*layers, magic="EDL2"):
        return SimpleNamespace(header=SimpleNamespace(magic=magic),
                               layers=[SimpleNamespace(op_type=t, attributes=dict.fromkeys(a, 0)) for t, a in layers])

    native = compat.analyze(model(("MatMul", ["activation", "quant_type", "input1_layout"])))
    assert native["oldest"] is None and native["unreadable"] == ["MatMul.input1_layout"]
    assert native["operators"]["MatMul"]["attributes"]["input1_layout"] is None
    assert "MatMul.input1_layout, which no known ESP-DL release" in compat.problem(native)
    assert "read by no known release" in "\n".join(compat.format_lines(native))

    unknown = compat.analyze(model(("NoSuchOp", ["x"]), ("Conv", ["kernel_shape", "quant_type"])))
    assert unknown["unreadable"] == ["operator NoSuchOp"] and unknown["ignored_attributes"] == ["Conv.kernel_shape"]

    plain = model(("Conv", ["activation", "quant_type", "kernel_shape"]), magic="EDL1")
    assert compat.analyze(plain)["oldest"] == "3.0.0" and compat.problem(compat.analyze(plain)) is None

    monkeypatch.setattr(compat, "declared_range", lambda *a: ("^3.0.0", "test"))
    newer = compat.analyze(model(("Swish", ["lut", "quant_type"])))
    assert newer["oldest"] == "3.2.0" and not newer["declared"]["reads"]
    assert "needs ESP-DL 3.2.0 or newer (for format EDL2, operator Swish)" in compat.problem(newer)


# --- the table, the declared range ------------------------------------------------------------------------------
def test_release_table_holds_esp_dl_facts():
    tab = compat.table()
    assert tab["releases"]["3.3.9"].startswith("12c0616d")  # the esp-dl commit the project's facts come from
    assert compat.newest_known() == "3.3.9"
    ops = tab["operators"]
    # dl_module_matmul.hpp: deserialize reads activation and quant_type; input1_layout in no release up to 3.3.9
    assert ops["MatMul"]["attributes"] == {"activation": "3.0.0", "quant_type": "3.0.0"}
    assert ops["Swish"]["since"] == "3.2.0" and ops["Swish"]["attributes"]["lut"] == "3.2.0"
    assert ops["QuantizeLinear"]["module"] == "RequantizeLinear"
    assert tab["formats"]["EDL2"] == "3.2.0" and tab["formats"]["EDL1"] == "3.0.0"


def test_declared_range_comes_from_idf_component_yml():
    spec, source = compat.declared_range()
    assert Path(source) == REPO / "idf_component.yml"
    assert spec == compat.DECLARED_ESP_DL  # the packaged fallback says what the component says
    assert compat.declared_range(REPO / "no-such.yml") == (compat.DECLARED_ESP_DL, "packaged default")
    assert compat.range_minimum("^3.3.9") == "3.3.9"
    assert compat.range_minimum(">=3.2, <4") == "3.2.0"
    assert compat.range_minimum("~3.3.1") == "3.3.1" and compat.range_minimum("*") == "0.0.0"
    with pytest.raises(UserError, match="cannot read ESP-DL version range"):
        compat.range_minimum("latest")


def test_other_esp_ppq_is_refused_before_any_work(monkeypatch, tmp_path):
    import importlib.metadata

    from yolo11_pose.make.quantize import check_ppq_version

    monkeypatch.setattr(importlib.metadata, "version", lambda name: "1.3.5")
    with pytest.raises(UserError, match=r"esp-ppq 1\.3\.5 is installed, .* esp-ppq==1\.3\.12"):
        check_ppq_version()


# --- inspect ---------------------------------------------------------------------------------------------------
def test_inspect_lists_operators_attributes_and_oldest_esp_dl(shared, build160, capsys):
    from yolo11_pose.cli import main

    files = sorted(REFERENCE_ESPDL.glob("*/*.espdl"))
    require_shared(*files)
    assert len(files) == 4
    for f in files:
        model = read_espdl(f)
        info = to_json(model)["esp_dl"]
        assert info["oldest"] == "3.2.0" and info["declared"]["reads"], f
        assert info["operators"]["MatMul"]["attributes"] == {"activation": "3.0.0", "quant_type": "3.0.0"}
        assert info["operators"]["Conv"]["attributes"]["kernel_shape"] == "ignored"
        text = format_text(model)
        declared = next(ln for ln in text.splitlines() if "component declares espressif/esp-dl" in ln)
        assert "oldest ESP-DL that reads it all: 3.2.0" in text and declared.endswith("reads it")
    ours = build160[0] / "model.espdl"
    assert main(["inspect", str(ours), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)["esp_dl"]
    assert {"Slice", "Concat", "MatMul", "Swish"} <= set(info["operators"])
    assert info["oldest"] == "3.2.0" and info["unread_attributes"] == []
    assert main(["inspect", str(ours)]) == 0
    assert "component declares espressif/esp-dl ^3.3.9" in capsys.readouterr().out


# --- shipped models (regenerated by the lead) ------------------------------------------------------------------
def test_shipped_models_use_only_what_the_declared_esp_dl_reads():
    files = sorted((REPO / "models").glob("**/*.espdl"))
    assert files
    bad = {str(f.relative_to(REPO)): compat.problem(compat.analyze_file(f)) for f in files}
    assert not {k: v for k, v in bad.items() if v}


def test_arithmetic_per_release_names_what_later_releases_may_change(build_s3_320):
    """A file with int16 Swish tables (our old mixed S3 416, in shared/models/espdl-mixed): 3.3.9 ignores them, what a
    later 3.x the range admits does is unknown, so publishing one is refused; a fresh build carries no such
    construct and every operation is covered by ESP-DL's outputs."""
    from yolo11_pose.espdl import compat
    from yolo11_pose.espdl.reader import read_espdl
    from yolo11_pose.espdl.inspect_report import format_text
    from yolo11_pose.util import UserError

    old = SHARED / "models" / "espdl-mixed" / "s3_416_mixed.espdl"
    require_shared(old)
    a = compat.arithmetic(read_espdl(old))
    assert a["unknown_later"] == ["int16 Swish/Sigmoid with a lut table"] and a["later"] == "unknown"
    assert a["constructs"]["int16 Swish/Sigmoid with a lut table"] == 23
    with pytest.raises(UserError, match="int16 Swish/Sigmoid with a lut table"):
        compat.check_publishable(old)
    text = format_text(read_espdl(build_s3_320 / "model.espdl"))
    section = text[text.index("Arithmetic per ESP-DL release"):]
    assert "verified against ESP-DL 3.3.9's own outputs" in section and "UNKNOWN" not in section
    assert "no construct whose meaning depends on the release" in section
