"""`yolo11-pose inspect --memory` (tools/yolo11_pose/espdl/memory.py): ESP-DL 3.3.9's greedy memory planner on hand-made
graphs whose layout is worked out below, on a tiny .espdl built here, and on the shipped models; the board-log
comparison in devicelog."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from yolo11_pose.evaluation import devicelog

from yolo11_pose.espdl import memory
from yolo11_pose.espdl.executor import Node

from .conftest import REPO
from .test_inspect import _build_payload, _write_model

SHIPPED = sorted(REPO.glob("models/*/*.espdl"))


def _node(name, op, ins, outs):
    return Node(name, op, ins, outs, {})


def test_chain_of_convs_reuses_the_freed_input():
    """x(192 B) -conv0-> t0(256) -conv1-> t1(256) -conv2-> y(256, graph output), 16-byte alignment.
    node 0: x at [0,192), t0 at [192,448). node 1: x freed (x's last reader was node 0); t1 (256) does not fit the
    192-byte hole and the last chunk is taken: new chunk [448,704). node 2: t0 freed, merges with the hole into
    [0,448); y takes [0,256). The block ends with t1: 704 bytes; without reuse 960."""
    nodes = [_node("c0", "Conv", ["x", "w0"], ["t0"]), _node("c1", "Conv", ["t0", "w1"], ["t1"]),
             _node("c2", "Conv", ["t1", "w2"], ["y"])]
    info = {"x": ([1, 8, 8, 3], "int8"), "t0": ([1, 8, 8, 4], "int8"), "t1": ([1, 8, 8, 4], "int8"),
            "y": ([1, 8, 8, 4], "int8")}
    infos = memory._tensor_infos(nodes, ["x"], ["y"], info, {"w0", "w1", "w2"})
    assert [(t.name, t.begin, t.end) for t in infos] == [("x", 0, 1), ("t0", 0, 2), ("t1", 1, 3), ("y", 2, -1)]
    chunks = memory._simulate(infos, len(nodes))
    assert chunks[-1].offset + chunks[-1].size == 704
    assert {t.name: t.offset for t in infos} == {"x": 0, "t0": 192, "t1": 448, "y": 0}


def test_inplace_module_shares_its_input_and_extends_its_life():
    """x -Conv-> a -Swish (in place, changes the buffer)-> b -Conv-> y, 64 bytes each. b lives in a's buffer, so a
    stays until node 2 reads b; x's slot [0,64) is free by node 2 and y fits it exactly: block 128 (256 without
    reuse). An Add whose input is a graph output may not reuse it."""
    nodes = [_node("c0", "Conv", ["x", "w"], ["a"]), _node("s", "Swish", ["a"], ["b"]),
             _node("c1", "Conv", ["b", "w"], ["y"])]
    info = {n: ([1, 4, 4, 4], "int8") for n in ("x", "a", "b", "y")}
    infos = memory._tensor_infos(nodes, ["x"], ["y"], info, {"w"})
    by = {t.name: t for t in infos}
    assert by["b"].leader is by["a"] and by["a"].end == 3
    chunks = memory._simulate(infos, len(nodes))
    assert chunks[-1].offset + chunks[-1].size == 128
    assert by["y"].offset == 0 and by["a"].offset == 64

    # The same with "a" a graph output: Swish must write a new buffer.
    infos = memory._tensor_infos(nodes, ["x"], ["y", "a"], info, {"w"})
    assert all(t.leader is None for t in infos)
    # A Reshape (in place, unchanged buffer) of a larger tensor shares it; into a larger one it cannot.
    info2 = {"x": ([1, 64], "int8"), "r": ([1, 8, 8], "int8"), "y": ([1, 8, 8, 2], "int8")}
    n2 = [_node("r", "Reshape", ["x", "shape"], ["r"]), _node("c", "Conv", ["r", "w"], ["y"])]
    (_, r, _) = memory._tensor_infos(n2, ["x"], ["y"], info2, {"shape", "w"})
    assert r.leader is not None and r.leader.name == "x"


def test_tiny_espdl_hand_computed(tmp_path):
    """Three 1x1 Convs on an 8x8 input (tests/test_inspect.py builds the file): activations as in the first test,
    parameters 3 filters (12, 16, 16 B int8) and 3 int32 biases (16 B), each rounded up to 16 bytes, test values
    192 + 256 bytes."""
    path = _write_model(tmp_path / "tiny.espdl", _build_payload(per_channel=[True, True, True], test_values=True,
                                                                metadata={"target": "esp32s3"}))
    p = memory.plan(path)
    assert p.target == "esp32s3"
    assert (p.activation_bytes, p.activation_sum, p.tensors, p.inplace) == (704, 960, 4, 0)
    assert (p.parameter_bytes, p.parameter_count) == (6 * 16, 6)
    assert (p.test_value_bytes, p.test_tensors) == (448, 2)
    assert p.psram_bytes == 704 + 96 and p.internal_bytes == 0
    assert memory.plan(path, location="sdcard").psram_bytes == 704 + 96 + path.stat().st_size
    no_psram = memory.plan(path, spiram=False)
    assert no_psram.psram_bytes == 0 and no_psram.internal_bytes == 704 + 96
    text = memory.format_plan(p)
    assert "dl::MemoryManagerGreedy" in text and "704 B" in text and "96 B" in text and "448 B" in text


def _live_lower_bound(path) -> int:
    """Bytes that must coexist while some node runs: its variable inputs and outputs (in-place pairs counted once,
    as the larger). A planner can do no better; an independent check of the simulation on real graphs."""
    from yolo11_pose.espdl.executor import load_graph

    g = load_graph(path)
    best = 0
    for nd in g.nodes:
        ins = [n for n in nd.inputs if n and n not in g.consts]
        size = {n: memory._aligned(int(__import__("math").prod(g.info[n][0])) * memory.DTYPE_BYTES[g.info[n][1]])
                for n in [*ins, *nd.outputs]}
        if nd.op in memory.INPLACE_CHANGED | memory.INPLACE_UNCHANGED:
            live = max(size.values()) + sum(size[n] for n in ins[1:])
        else:
            live = sum(size[n] for n in set(ins) | set(nd.outputs))
        best = max(best, live)
    return best


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_shipped_models(path):
    p = memory.plan(path)
    assert p.target == path.parent.name  # the file records its chip
    assert _live_lower_bound(path) <= p.activation_bytes <= p.activation_sum
    assert p.largest_tensor[1] <= p.activation_bytes
    assert p.activation_bytes > memory.CHIPS[p.target].internal_ram  # why PSRAM is required
    from yolo11_pose.espdl.reader import read_espdl

    m = read_espdl(path)
    used = {n for layer in m.layers for n in layer.params}
    assert p.parameter_bytes == sum(memory._aligned(q.nbytes) for q in m.params if q.name in used)
    assert (p.test_value_bytes > 0) == m.has_test_values
    assert p.file_bytes == path.stat().st_size


def test_cli_inspect_memory(tmp_path):
    path = next(p for p in SHIPPED if "esp32s3" in str(p) and "416" in p.name)
    r = subprocess.run([sys.executable, "-m", "yolo11_pose.cli", "inspect", "--memory", str(path)],
                       capture_output=True, text=True, check=False, timeout=300)
    assert r.returncode == 0, r.stderr
    p = memory.plan(path)
    assert "dl::MemoryManagerGreedy" in r.stdout and f"{p.activation_bytes:,} B" in r.stdout
    assert "in PSRAM" in r.stdout and "in flash (embedded in the app" in r.stdout
    r = subprocess.run([sys.executable, "-m", "yolo11_pose.cli", "inspect", "--memory", "--json", "--target",
                        "esp32p4", "--location", "sdcard", str(path)], capture_output=True, text=True, check=False,
                       timeout=300)
    d = json.loads(r.stdout)
    assert d["target"] == "esp32p4" and d["psram_bytes"] == p.psram_bytes + path.stat().st_size
    r = subprocess.run([sys.executable, "-m", "yolo11_pose.cli", "inspect", "--memory", str(tmp_path / "no.espdl")],
                       capture_output=True, text=True, check=False, timeout=300)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "not found" in r.stderr


def _board_log(start_psram: int, loaded_psram: int, min_psram: int) -> devicelog.DeviceLog:
    lines = [f'POSE_MEM: {{"stage": "start", "internal_free": 400000, "psram_free": {start_psram}, '
             f'"internal_min_free": 400000, "psram_min_free": {start_psram}}}',
             'POSE_CONFIG: {"target": "esp32s3", "input": [416, 416]}',
             f'POSE_MEM: {{"stage": "model_loaded", "internal_free": 380000, "psram_free": {loaded_psram}, '
             f'"internal_min_free": 370000, "psram_min_free": {min_psram}}}']
    return devicelog.parse_lines(lines)


def test_devicelog_compares_the_board_with_the_prediction(tmp_path):
    path = next(p for p in SHIPPED if "esp32s3" in str(p) and "416" in p.name)
    p = memory.plan(path)
    start = 8_000_000
    good = _board_log(start, start - p.psram_bytes - 40_000, start - p.psram_bytes - p.test_value_bytes - 2_500_000)
    assert devicelog.compare_memory(good, p) == []
    assert devicelog.memory_figures(good)["psram"] == p.psram_bytes + 40_000
    bad = _board_log(start, start - 2 * p.psram_bytes, start - 2 * p.psram_bytes)
    (problem,) = devicelog.compare_memory(bad, p)
    assert "model PSRAM" in problem and f"{p.psram_bytes:,}" in problem
    log = tmp_path / "board.log"
    log.write_text("\n".join(["noise", *[
        f'POSE_MEM: {{"stage": "start", "internal_free": 400000, "psram_free": {start}, "internal_min_free": 1, '
        f'"psram_min_free": {start}}}',
        'POSE_CONFIG: {"target": "esp32s3"}',
        f'POSE_MEM: {{"stage": "model_loaded", "internal_free": 380000, "psram_free": {start - p.psram_bytes}, '
        f'"internal_min_free": 1, "psram_min_free": {start - p.psram_bytes - 10}}}']]) + "\n")
    r = subprocess.run([sys.executable, "-m", "yolo11_pose.evaluation.devicelog", "memory", "--log", str(log), "--model",
                        str(path)], capture_output=True, text=True, check=False, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"predicted PSRAM {p.psram_bytes:,} B" in r.stdout
