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
