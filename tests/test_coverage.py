"""The coverage gate: every arithmetic our files use is covered by an output ESP-DL's own kernels computed.

The verified list (cfg/verified_ops.json) must be exactly what the reference files in ../shared contain (not a hand
list), every shipped model and every fresh build of each recipe and precision we support must stay inside it, and
what falls outside is refused in one line unless the user opts in.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import CALIB_LIST, REPO, SHARED, WEIGHTS, require_shared

SHIPPED = sorted((REPO / "models").glob("esp32*/*.espdl"))


def test_verified_list_is_what_the_reference_archives_hold():
    from yolo11_pose.espdl import coverage
    from yolo11_pose.espdl.executor import ESPDL_VERSION, load_graph

    refs = coverage.reference_files(SHARED) if (SHARED / "data" / "espdl-outputs-mixed").is_dir() else []
    require_shared(SHARED / "data" / "espdl-outputs-mixed" / "manifest.json", *[r[0] for r in refs])
    want = coverage.derive(refs, load_graph, ESPDL_VERSION)
    have = json.loads(coverage.VERIFIED_PATH.read_text())
    assert have["signatures"] == want["signatures"], "regenerate: python -m yolo11_pose.espdl.coverage ../shared"
    assert have["espdl"] == ESPDL_VERSION
    # every evidence label names a folder of archives that exists
    for labels in have["signatures"].values():
        for label in labels:
            folder, tag = label.split("/")
            assert any((SHARED / "data" / folder).glob(f"{tag}_*.npz")), label


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_models_are_inside_the_gate(path):
    from yolo11_pose.espdl.coverage import unverified
    from yolo11_pose.espdl.executor import load_graph

    assert not unverified(load_graph(path)), path


def _unverified_of(build_dir: Path) -> dict:
    from yolo11_pose.espdl.coverage import unverified
    from yolo11_pose.espdl.executor import load_graph

    return unverified(load_graph(build_dir / "model.espdl"))


def test_fresh_int8_builds_are_inside_the_gate(build_p4_320, build_s3_320):
    for b in (build_p4_320, build_s3_320):
        assert not _unverified_of(b), b
        assert json.loads((b / "manifest.json").read_text())["esp_dl"]["unverified_ops"] == []


@pytest.mark.slow
@pytest.mark.parametrize("target", ["esp32p4", "esp32s3"])
def test_fresh_mixed_and_accurate_builds_are_inside_the_gate(shared, tmp_path, target):
    """Mixed precision (the stem, the attention's qkv and head convs in int16) and the accurate recipe's own int16
    choice, at 128 px: every signature verified."""
    from yolo11_pose.make.build import build

    layers = ["/model.0/conv/Conv", "/model.10/m/m.0/attn/qkv/conv/Conv", "/model.23/cv2.0/cv2.0.2/Conv",
              "/model.23/cv3.0/cv3.0.1/cv3.0.1.1/conv/Conv", "/model.4/cv2/conv/Conv"]
    build(str(WEIGHTS), 128, target, 8, str(CALIB_LIST), 8, tmp_path / "mixed", int16_layers=layers, progress=False,
          log=lambda *_: None)
    assert not _unverified_of(tmp_path / "mixed")
    build(str(WEIGHTS), 128, target, 8, str(CALIB_LIST), 8, tmp_path / "acc", recipe="accurate", int16_budget=0.1,
          progress=False, log=lambda *_: None)
    man = json.loads((tmp_path / "acc" / "manifest.json").read_text())
    assert man["recipe"]["int16"]["layers"], "the budget should have bought some int16 layers"
    assert not _unverified_of(tmp_path / "acc")


def test_bits16_build_is_refused_in_one_line_unless_opted_in(shared, tmp_path, monkeypatch, capsys):
    """--bits 16 makes int16 Add/Concat/MaxPool/Resize/Softmax..., which no ESP-DL output covers: refused, nothing
    published; with the opt-in it is written and the manifest lists what is unverified."""
    from yolo11_pose.cli import main
    from yolo11_pose.espdl.coverage import ENV

    monkeypatch.delenv(ENV, raising=False)
    args = ["build", "--weights", str(WEIGHTS), "--imgsz", "96", "--target", "esp32s3", "--bits", "16", "--calib",
            str(CALIB_LIST), "--num-calib", "8"]
    assert main(args + ["--out", str(tmp_path / "no")]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "no output of ESP-DL's own kernels covers" in err[0] and "int16" in err[0], err
    assert "--allow-unverified-ops" in err[0]
    assert not (tmp_path / "no" / "model.espdl").exists() and not (tmp_path / "no" / "manifest.json").exists()
    assert main(args + ["--out", str(tmp_path / "yes"), "--allow-unverified-ops"]) == 0
    man = json.loads((tmp_path / "yes" / "manifest.json").read_text())
    assert any(s.startswith("any Add in=int16,int16") for s in man["esp_dl"]["unverified_ops"])


def test_gate_names_an_altered_node(tmp_path):
    """A shipped file with one conv's fused activation changed to ReLU (a combination no archive holds)."""
    from yolo11_pose.espdl import coverage
    from yolo11_pose.espdl.executor import Executor, load_graph

    g = load_graph(SHIPPED[0])
    conv = next(nd for nd in g.nodes if nd.op == "Conv")
    conv.attrs["activation"] = "ReLU"
    with pytest.raises(coverage.UnverifiedError) as e:
        Executor(g, allow_unverified=False)
    assert conv.name in str(e.value) and "activation=ReLU" in str(e.value) and "\n" not in str(e.value)
    assert Executor(g, allow_unverified=True).unverified


def test_a_passive_op_that_changes_the_exponent_is_outside_the_gate(shared):
    """ESP-DL's Slice/Split/Reshape/... copy integers as they are, so a file whose Slice reads at one exponent and
    writes at another does not compute what it says. ESP-PPQ wrote exactly that after int16 layers
    (`/model.13/Slice_1`, 2**-4 in, 2**-5 out, in a 30 % int16 ESP32-S3 416 build, before ppq_env._align_passive_ops);
    no reference archive has one, so the gate refuses it."""
    from yolo11_pose.espdl.coverage import node_signature, unverified
    from yolo11_pose.espdl.executor import load_graph

    g = load_graph(SHIPPED[0])
    assert not unverified(g)
    nd = next(n for n in g.nodes if n.op == "Slice")
    assert node_signature(g, nd, "esp32p4").endswith(" aligned")
    shape, dtype, exps = g.info[nd.outputs[0]]
    g.info[nd.outputs[0]] = (shape, dtype, [exps[0] - 1])
    assert node_signature(g, nd, "esp32p4").endswith(" exponents_differ")
    assert any("Slice" in s and "exponents_differ" in s for s in unverified(g)), unverified(g)
