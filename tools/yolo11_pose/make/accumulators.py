"""ESP32-S3 int8 accumulators: how close each layer comes to the 20-bit lane that saturates.

The ESP32-S3's int8 convolution kernels (esp-dl ``dl/base/isa/tie728/dl_tie728_s8_conv2d*.S``) keep every product and
the bias of an output channel in one 20-bit lane of QACC (16 lanes; leftover channels in the 40-bit ACCX), which
saturates; the bias is preloaded and masked to 20 bits (``reset_bias_layout`` in ESP-PPQ's export,
``dl_esp32s3_*_bias``). ESP-DL's C kernels, and so the executor, accumulate in 32 bits: the two agree only while no
running partial sum leaves [-2**19, 2**19). A partial sum is at most, in magnitude, the convolution of |x| with |w|
plus |bias|: that bound, measured on real images, is what :func:`measure` records per int8 Conv/MatMul.

Refused outright (no image can make them right): an int8 bias of 2**19 or more, and a layer whose output scale
needs an accumulator beyond 2**19 to reach an unsaturated int8 output (127 * 2**shift > 2**19).
"""
from __future__ import annotations

import numpy as np

from yolo11_pose.util import UserError

LANE_BITS = 20
LIMIT = 1 << (LANE_BITS - 1)
WARN_SHARE = 0.5  # warn when a measured bound passes half the lane


def _int8_layers(graph):
    for nd in graph.nodes:
        if nd.op in ("Conv", "MatMul") and nd.attrs.get("quant_type", "S8") == "S8":
            yield nd


def static_problems(graph) -> list[str]:
    """What no input can make right on the ESP32-S3: one line each."""
    probs = []
    for nd in _int8_layers(graph):
        if nd.op == "Conv" and len(nd.inputs) > 2 and nd.inputs[2] in graph.consts:
            b = np.abs(graph.consts[nd.inputs[2]].value.astype(np.int64))
            if b.size and int(b.max()) >= LIMIT:
                probs.append(f"{nd.name}: bias {int(b.max())} does not fit the 20-bit accumulator lane "
                              f"(|bias| < {LIMIT})")
        w = nd.inputs[1] if len(nd.inputs) > 1 else None
        ew = (graph.consts[w].exponents if w in graph.consts else
              graph.info.get(w, (None, None, []))[2]) if w else []
        ei = graph.info.get(nd.inputs[0], (None, None, []))[2] or []
        eo = graph.info.get(nd.outputs[0], (None, None, []))[2] or []
        if ew and ei and eo:
            shift = max(eo[0] - e - ei[0] for e in ew)
            if shift > 0 and 127 * (1 << shift) > LIMIT:
                probs.append(f"{nd.name}: output shift {shift} needs accumulators up to {127 << shift} for an "
                             f"unsaturated output, beyond the 20-bit lane ({LIMIT})")
    return probs


def measure(executor, inputs: list[np.ndarray]) -> dict[str, int]:
    """{layer: largest |partial sum| bound} over ``inputs`` (device input tensors, NHWC)."""
    import torch
    import torch.nn.functional as F

    from yolo11_pose.espdl.executor import unpack_filter, unpack_matmul

    g = executor.graph
    peak: dict[str, int] = {}
    layers = list(_int8_layers(g))
    for x in inputs:
        env = executor.run(x[None] if x.ndim == 3 else x, keep=True)
        for nd in layers:
            a = env[nd.inputs[0]][0] if nd.inputs[0] in env else g.consts[nd.inputs[0]].value
            if nd.op == "Conv":
                c = g.consts[nd.inputs[1]]
                group = int(nd.attrs.get("group", 1))
                w = np.abs(unpack_filter(c.value, c.layout, group != 1, 16).astype(np.int64))
                # float32 sums integers exactly below 2**24: |x| <= 128 times the largest filter's sum of |w|
                exact32 = 128 * int(w.reshape(w.shape[0], -1).sum(1).max(initial=0)) < (1 << 24)
                ft = np.float32 if exact32 else np.float64
                w = w.astype(ft)
                xt = torch.from_numpy(np.abs(a.astype(ft))).permute(0, 3, 1, 2)
                pads = list(nd.attrs.get("pads") or [0, 0, 0, 0])
                xt = F.pad(xt, (pads[1], pads[3], pads[0], pads[2]))
                acc = F.conv2d(xt, torch.from_numpy(np.ascontiguousarray(w.transpose(0, 3, 1, 2))),
                               stride=list(nd.attrs.get("strides") or [1, 1]),
                               dilation=list(nd.attrs.get("dilations") or [1, 1]), groups=group)
                acc = acc.amax(dim=(0, 2, 3)).numpy()
                if len(nd.inputs) > 2 and nd.inputs[2] in g.consts:
                    acc = acc + np.abs(g.consts[nd.inputs[2]].value.reshape(-1).astype(np.float64))
                bound = int(acc.max())
            else:
                b = env[nd.inputs[1]][0] if nd.inputs[1] in env else g.consts[nd.inputs[1]].value
                bm = unpack_matmul(b, 16)
                bound = int(np.matmul(np.abs(a.astype(np.float64)), np.abs(bm.astype(np.float64))).max())
            peak[nd.name] = max(peak.get(nd.name, 0), bound)
    return peak


def report(executor, inputs: list[np.ndarray], allow: bool = False) -> dict:
    """What an ESP32-S3 build's manifest records; refuses (UserError) what no input can make right, unless
    ``allow`` (the user's --allow-unverified-ops), when the problems are recorded instead."""
    probs = static_problems(executor.graph)
    if probs and not allow:
        more = f" (and {len(probs) - 1} more)" if len(probs) > 1 else ""
        raise UserError(f"refusing to write the model: on the ESP32-S3 {probs[0]}{more}; nothing was written")
    peak = measure(executor, inputs)
    ratio = {k: round(v / LIMIT, 4) for k, v in peak.items()}
    worst = max(ratio, key=ratio.get) if ratio else None
    return {"lane_bits": LANE_BITS, "limit": LIMIT, "images": len(inputs), "warn_above": WARN_SHARE,
            **({"refusals_overridden": probs} if probs else {}),
            "worst_layer": worst, "worst_share": ratio.get(worst, 0.0),
            "over_warn": sorted(k for k, r in ratio.items() if r > WARN_SHARE),
            "layers": dict(sorted(peak.items(), key=lambda kv: -kv[1]))}
