"""ESP-PPQ's simulation with ESP-DL's semantics (chipsim.py) against the executor's, over the whole int16 domain.

The executor's float path of int16 Swish/Sigmoid is checked node for node against ESP-DL 3.3.9's own kernels
(test_executor_mixed.py); here the forward that calibration and fine-tuning run must give the same integers for
every one of the 65536 inputs, with both chips' rounding, where ESP-PPQ's own forward does not.
"""
from __future__ import annotations

import numpy as np
import pytest


class _Cfg:
    def __init__(self, bits):
        self.num_of_bits = bits


class _Op:
    def __init__(self, op_type, bits):
        self.type, self.name, self.attributes = op_type, f"test_{op_type}", {}
        self.input_quant_config = [_Cfg(bits)]
        self.num_of_input, self.num_of_output = 1, 1


def _forward(op_type):
    from esp_ppq.core import TargetPlatform
    from esp_ppq.executor.base import OPERATION_FORWARD_TABLE

    from yolo11_pose.make.quantize import import_ppq

    import_ppq()
    return OPERATION_FORWARD_TABLE[TargetPlatform.ESPDL_INT16][op_type]


@pytest.mark.parametrize("op_type", ["Swish", "Sigmoid"])
@pytest.mark.parametrize("ei,eo", [(-10, -10), (-12, -11), (-8, -14), (-13, -15)])
def test_int16_activation_simulation_is_espdl_float_path(op_type, ei, eo):
    import torch

    from yolo11_pose.espdl.executor import _sat, float_activation, round_float

    f = _forward(op_type)
    q = np.arange(-32768, 32768, dtype=np.int64)
    x = torch.from_numpy((q * 2.0 ** ei).astype(np.float32))

    def as_chip(fn, rounding):
        y = fn(_Op(op_type, 16), [x]).detach().numpy().astype(np.float32) * np.float32(2.0 ** -eo)
        return _sat(round_float(y, rounding).astype(np.int64), "int16")

    ideal = getattr(f, "_yolo11_pose_espdl")  # ESP-PPQ's own forward, kept by chipsim
    worse = 0
    for rounding in ("half_even", "half_up"):
        want = float_activation(op_type, q, ei, eo, rounding, "int16")
        got = as_chip(f, rounding)
        assert int((got != want).sum()) == 0, (rounding, np.flatnonzero(got != want)[:5])
        worse += int((as_chip(ideal, rounding) != want).sum())
    if op_type == "Swish" and ei == -10:
        assert worse > 0, "ESP-PPQ's own forward should differ somewhere here, or this test proves nothing"


def test_gradient_is_the_ideal_functions():
    """Fine-tuning still trains: the gradient through the replaced forward is torch's SiLU gradient."""
    import torch

    f = _forward("Swish")
    x = torch.linspace(-6, 6, 101, requires_grad=True)
    f(_Op("Swish", 16), [x]).sum().backward()
    x2 = x.detach().clone().requires_grad_(True)
    torch.nn.functional.silu(x2).sum().backward()
    assert torch.allclose(x.grad, x2.grad)
