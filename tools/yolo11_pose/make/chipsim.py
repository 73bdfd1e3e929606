"""ESP-PPQ's simulation, made to compute what ESP-DL computes where the two differ.

Calibration, int16 ranking and fine-tuning all optimise ESP-PPQ's simulated outputs, so wherever ESP-PPQ's forward
function and ESP-DL's kernel compute different functions the recipes optimise the wrong model. ``install()``
replaces, for every ESP-DL platform of ESP-PPQ's dispatch table, the forwards of the operators where ESP-DL 3.3.9
(espressif/esp-dl @ 12c0616d) computes something else; the values are the executor's (``executor.py``, itself
checked value for value against ESP-DL's own kernels' outputs), the gradients stay those of the ideal function
(a straight-through estimate), so fine-tuning still trains.

- int16 Swish / Sigmoid (``dl_module_swish.hpp`` / ``dl_module_sigmoid.hpp``): ``deserialize`` reads a lookup table
  only for int8; int16 runs ``forward_template``: ``temp = q * DL_SCALE(e)`` in float, ``1.0 / (1.0 + expf(-temp))``
  as a double division returned as float, times ``temp`` (Swish) in float, rounded by the output quantizer.
  ESP-PPQ uses ``torch.sigmoid`` in float32 (a different last bit now and then). int8 Swish / Sigmoid are exported as
  256-entry tables computed from this same forward, so they equal ESP-PPQ's simulation already.
- int8 Softmax (``dl_module_softmax.hpp`` ``forward_lut``): ``expf`` of the dequantized input with no row maximum
  subtracted, a left-to-right float32 sum, one float32 division. ESP-PPQ uses ``torch.softmax``.

Not replaced, and named where the two are compared (tests/test_executor_vs_ppq.py): int16 convolutions, which ESP-DL
accumulates exactly in 64 bits (``dl_base_conv2d.cpp``) and ESP-PPQ in float32.
"""
from __future__ import annotations

__all__ = ["install", "REPLACED"]

#: (operator, input bits) whose ESP-PPQ forward is replaced; the coverage gate and the docs read it.
REPLACED = (("Swish", 16), ("Sigmoid", 16), ("Softmax", 8))
_MARK = "_yolo11_pose_espdl"


def _in_bits(op) -> int | None:
    cfgs = getattr(op, "input_quant_config", None)
    if not cfgs:
        return None
    try:
        return int(cfgs[0].num_of_bits)
    except (AttributeError, TypeError, ValueError):
        return None


def _exact(ideal, value):
    """``value`` in the forward pass, ``ideal``'s gradient in the backward pass (no float residue: not a + (b - a))."""
    import torch

    class _Exact(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            return b

        @staticmethod
        def backward(ctx, g):
            return g, None

    if ideal.requires_grad:
        return _Exact.apply(ideal, value.detach())
    return value


def espdl_sigmoid(t):
    """ESP-DL's ``dl::math::sigmoid`` on float32 ``t``: expf (correctly rounded), then a double division."""
    import torch

    e = torch.exp(-t.detach().double()).float()
    return (1.0 / (1.0 + e.double())).float()


def _swish_like(orig, kind: str):
    import torch

    def forward(op, values, ctx=None, **kwargs):
        ideal = orig(op, values, ctx, **kwargs)
        if _in_bits(op) != 16:
            return ideal
        t = values[0].detach().float()
        s = espdl_sigmoid(t)
        y = (s * t) if kind == "Swish" else s
        return _exact(ideal, y.to(ideal.dtype) if ideal.dtype != torch.float32 else y)

    setattr(forward, _MARK, orig)
    return forward


def _softmax(orig):
    import torch

    def forward(op, values, ctx=None, **kwargs):
        ideal = orig(op, values, ctx, **kwargs)
        if _in_bits(op) != 8:
            return ideal
        x = values[0].detach().float()
        default_axis = -1 if op.opset.onnx_opset_version() >= 13 else 1
        axis = int(op.attributes.get("axis", default_axis)) % x.dim()
        e = torch.exp(x.double()).float()  # the 256-entry table holds expf of every dequantized int8 value
        s = e.select(axis, 0).clone()
        for i in range(1, e.shape[axis]):  # `sum += v` in float32, left to right (torch's cumsum adds in double)
            s = s + e.select(axis, i)
        return _exact(ideal, e / s.unsqueeze(axis))

    setattr(forward, _MARK, orig)
    return forward


def install() -> None:
    """Replace the forwards in every ESP-DL platform's dispatch table of ESP-PPQ (idempotent)."""
    from esp_ppq.executor.base import OPERATION_FORWARD_TABLE

    for platform, table in OPERATION_FORWARD_TABLE.items():
        if "ESPDL" not in getattr(platform, "name", str(platform)):
            continue
        for op_type in ("Swish", "Sigmoid"):
            f = table.get(op_type)
            if f is not None and not hasattr(f, _MARK):
                table[op_type] = _swish_like(f, op_type)
        f = table.get("Softmax")
        if f is not None and not hasattr(f, _MARK):
            table["Softmax"] = _softmax(f)
