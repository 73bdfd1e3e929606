"""The executor against ESP-DL 3.3.9's own kernels on int8 + int16 files: every output value and every node.

Reference: shared/data/espdl-outputs-mixed (README there): ESP-DL 3.3.9's C kernels (espressif/esp-dl @ 12c0616d),
built for x86-64, ran three mixed-precision files and one int8 file on four images each and recorded every model
output and, per node of ESP-DL's execution order, the SHA-256 of that node's raw output. Nothing here is computed
by the code under test except the executor's own outputs.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from tests.conftest import SHARED, require_shared

MIXED = SHARED / "data" / "espdl-outputs-mixed"
MODELS = SHARED / "models" / "espdl-mixed"
CHIP = {"p4": "esp32p4", "s3": "esp32s3"}


def _entries() -> list[dict]:
    if not (MIXED / "manifest.json").is_file():
        return [{"file": "missing"}]
    return json.loads((MIXED / "manifest.json").read_text())


_EXECUTORS: dict = {}


def _executor(model: str, chip: str):
    from yolo11_pose.espdl.executor import Executor

    if model not in _EXECUTORS:
        _EXECUTORS[model] = Executor(MODELS / model, target=CHIP[chip])
    return _EXECUTORS[model]


def _node_rows(path) -> list[dict]:
    lines = path.read_text().splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, line.split("\t"))) for line in lines[1:] if line.strip()]


@pytest.mark.parametrize("entry", _entries(), ids=lambda e: e["file"])
def test_every_node_equals_espdl_kernels(entry):
    """0 differing output values and every node's SHA-256 equal to ESP-DL's, in ESP-DL's execution order."""
    require_shared(MIXED / "manifest.json", MODELS / entry.get("model", "missing").rsplit("/", 1)[-1])
    _check(entry, _executor(entry["model"].rsplit("/", 1)[-1], entry["chip"]))


@pytest.mark.parametrize("name", ["p4_416_mixed_esp-dl-bus.npz", "s3_640_mixed_esp-dl-bus.npz"])
def test_float_convolutions_equal_espdl_too(name, monkeypatch):
    """Where ``torch._int_mm`` is not exact (or is switched off) the int8 convolutions run as float convolutions
    and requantize in float: that path must reproduce ESP-DL's kernels as well (both roundings)."""
    from yolo11_pose.espdl import executor

    monkeypatch.setattr(executor, "_INT8_GEMM", [False])
    require_shared(MIXED / "manifest.json")
    entry = next(e for e in _entries() if e["file"] == name)
    require_shared(MODELS / entry["model"].rsplit("/", 1)[-1])
    _check(entry, executor.Executor(MODELS / entry["model"].rsplit("/", 1)[-1], target=CHIP[entry["chip"]]))


def _check(entry: dict, ex) -> None:
    require_shared(MIXED / "manifest.json", MIXED / "SHA256SUMS")
    sums = dict(line.split()[::-1] for line in (MIXED / "SHA256SUMS").read_text().splitlines() if line.strip())
    for name in (entry["file"], entry["nodes"]):
        assert hashlib.sha256((MIXED / name).read_bytes()).hexdigest() == sums[name], name
    model = entry["model"].rsplit("/", 1)[-1]
    require_shared(MODELS / model)
    assert hashlib.sha256((MODELS / model).read_bytes()).hexdigest() == entry["model_sha256"]
    assert ex.rounding == entry["rounding"]
    d = np.load(MIXED / entry["file"])
    env = ex.run(d["input"], keep=True)
    for name in entry["outputs"]:
        q, e = env[name]
        assert e == int(d[f"{name}_exponent"]) and q.dtype == d[name].dtype and q.shape == d[name].shape, name
        diff = int((q != d[name]).sum())
        assert diff == 0, f"{entry['file']} {name}: {diff} of {q.size} values differ from ESP-DL's kernels"
    rows = _node_rows(MIXED / entry["nodes"])
    assert {r["output"] for r in rows} == {o for nd in ex.graph.nodes for o in nd.outputs}  # every node covered
    for row in rows:  # the first differing row is where the semantics part
        v, e = env[row["output"]]
        assert str(v.dtype) == {"float": "float32"}.get(row["dtype"], row["dtype"]), row
        got = hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()
        assert got == row["sha256"], (f"{entry['file']}: node {row['index']} {row['node']} ({row['op']}, "
                                      f"{row['dtype']}) differs from ESP-DL: min/max {v.min()}/{v.max()}, ESP-DL "
                                      f"{row['min']}/{row['max']}")


def test_int16_swish_tables_are_ignored_as_espdl_does():
    """The mixed files carry ESP-PPQ's int16 Swish tables; ESP-DL 3.3.9 computes those nodes in float. The stem's
    int16 Swish on the bus image: ESP-DL's maximum (nodes.tsv) is what the float path gives, not the table's."""
    entry = next(e for e in _entries() if e["file"] == "s3_416_mixed_esp-dl-bus.npz")
    model = entry["model"].rsplit("/", 1)[-1]
    require_shared(MODELS / model)
    ex = _executor(model, "s3")
    swish = ex.graph.nodes[1]
    assert swish.op == "Swish" and swish.attrs.get("lut"), "the file must carry an int16 table for this check"
    row = _node_rows(MIXED / entry["nodes"])[1]
    env = ex.run(np.load(MIXED / entry["file"])["input"], keep=True)
    v = env[swish.outputs[0]][0]
    assert v.dtype == np.int16 and int(v.max()) == int(float(row["max"])) == 31551
