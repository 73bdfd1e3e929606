"""The int16 choice never makes an activation bigger than the largest int8 one (ESP-DL plans activations by size)."""
from __future__ import annotations


def test_layers_whose_int16_output_outgrows_the_largest_activation_are_left_out():
    from yolo11_pose.make.recipe import pick_int16

    # the stem: the largest output (1,638,400 elements at 640) and the best gain per MAC; as int16 it would be twice
    # the largest int8 tensor. A 160x160x32 layer (819,200 elements) as int16 is exactly the stem's int8 size: kept.
    costs = {"stem": {"macs": 100, "params": 10, "out_elems": 1_638_400},
             "mid": {"macs": 100, "params": 10, "out_elems": 819_200},
             "head": {"macs": 800, "params": 10, "out_elems": 102_400}}
    rows = [{"op": "stem", "with": [], "gain": 9.0, "macs": 100, "params": 10},
            {"op": "mid", "with": [], "gain": 1.0, "macs": 100, "params": 10},
            {"op": "head", "with": [], "gain": 0.5, "macs": 800, "params": 10}]
    chosen, share, mac_share = pick_int16(rows, costs, 0.5)
    assert [r["op"] for r in chosen] == ["mid"] and mac_share == 0.1
    chosen, _, _ = pick_int16(rows, costs, 1.0)
    assert [r["op"] for r in chosen] == ["mid", "head"]


def test_int16_layers_leave_out_the_largest_outputs_until_the_psram_fits():
    """ESP-DL's greedy planner can grow its block by more than the int16 doubling (a 10 % int16 ESP32-S3 640 build
    needed 9.45 MB, the int8 one 6.99 MB): the recipe measures the plan and takes back to int8 the int16 layers of
    the largest output size, a size at a time, until it fits; every trial is recorded."""
    from yolo11_pose.make.recipe import fit_psram

    costs = {"a": {"out_elems": 800}, "b": {"out_elems": 800}, "c": {"out_elems": 400}, "d": {"out_elems": 100}}
    chosen = [{"op": k, "with": [f"{k}/act"], "gain": 1.0, "macs": 1, "params": 1} for k in "dcba"]
    asked = []

    def need(ops):  # bytes grow with the largest int16 output chosen
        asked.append(sorted(ops))
        return 1000 + 10 * max((costs[o]["out_elems"] for o in ops if o in costs), default=0)

    kept, trials = fit_psram(chosen, costs, need, limit=6000, log=lambda *_: None)
    assert [r["op"] for r in kept] == ["d", "c"]  # a and b (800) together, then 4000 + 1000 fits
    assert [t["psram_bytes"] for t in trials] == [9000, 5000] and [t["int16_layers"] for t in trials] == [4, 2]
    assert asked[1] == ["c", "c/act", "d", "d/act"]
    kept, trials = fit_psram(chosen, costs, need, limit=500, log=lambda *_: None)
    assert kept == [] and len(trials) == 3  # nothing int16 fits: all back to int8


def test_an_int16_matmul_fed_by_the_softmax_takes_the_transpose_between_them_along(official_onnx_320):
    """The attention's MatMul_1 reads the Softmax through /attn/Transpose_1 (Ultralytics' `v @ attn.transpose(-2, -1)`).
    The file quantizes the float Softmax output once, in the MatMul's dtype; ESP-PPQ quantizes it at the Transpose,
    so an int16 MatMul_1 needs the Transpose on the int16 platform too (test_executor_vs_ppq.py, s3-320-attn16)."""
    from yolo11_pose.make.recipe import int16_dispatch

    attn = "/model.10/m/m.0/attn/"
    assert int16_dispatch(official_onnx_320, [attn + "MatMul_1"]) == [attn + "MatMul_1", attn + "Transpose_1"]
    # the first MatMul reads q (through a Transpose) and k: no Softmax behind either, nothing added
    assert int16_dispatch(official_onnx_320, [attn + "MatMul", "/model.0/conv/Conv"]) == \
        [attn + "MatMul", "/model.0/conv/Conv"]
    assert int16_dispatch(official_onnx_320, []) == []
