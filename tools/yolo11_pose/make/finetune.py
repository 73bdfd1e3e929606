"""Label-free quantization-aware fine-tuning: the quantized graph learns to give the float model's own outputs.

The ESP-PPQ graph keeps its calibrated power-of-two scales (ESP-DL needs powers of two, so scales are not learned);
the float weights and biases of every Conv/MatMul are trained through ESP-PPQ's fake quantization (straight-through
rounding, no gradient where a value clips), so training moves the weights across rounding boundaries where that
brings the outputs closer to the float model's. The loss is what a pose detector cares about, per detection level:

- ``score``: noise-to-signal of the sigmoid probabilities (people, not the background, dominate it);
- ``box`` and ``kpt``: noise-to-signal of the raw outputs, each anchor weighted by the float model's score there
  (the boxes and keypoints of anchors that find nobody are never decoded).

No labels: the teacher is the same graph with quantization switched off. Held-out calibration images measure the
loss before and after; the trained weights are kept only when it went down.
"""
from __future__ import annotations

import math
import time

from yolo11_pose.util import UserError

#: images held out of training to measure the loss before and after
HELD_OUT = 8
#: anchors the float model gives less than this score still weigh this much in the box/keypoint loss
ANCHOR_FLOOR = 0.01


def _graph_params(graph):
    """(variable, op) of the float weights and biases of every quantized Conv/Gemm/MatMul."""
    import torch
    from esp_ppq.IR import QuantableOperation

    out = []
    for op in graph.operations.values():
        if not isinstance(op, QuantableOperation) or op.type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            continue
        for var in op.inputs[1:]:
            if var.is_parameter and isinstance(var.value, torch.Tensor) and var.value.is_floating_point():
                out.append(var)
    return out


def fast_fake_quant(executor, graph) -> int:
    """Register on `executor` a fake quantization for every static linear config of `graph` that gives ESP-PPQ's own
    values and gradients (per-tensor: straight-through inside the range, zero where it clips; per-channel: straight
    through), with in-place arithmetic and the clip mask saved in the forward pass. ESP-PPQ's functions allocate a
    tensor per step and re-derive the mask in the backward pass: with them the fake quantization took ~60 % of a
    training step at 640 on the CPU. Returns how many configs were registered."""
    import torch
    from esp_ppq.core import QuantizationProperty, RoundingPolicy
    from esp_ppq.executor.torch import TorchQuantizeDelegator
    from esp_ppq.IR import QuantableOperation

    half_up = {RoundingPolicy.ROUND_HALF_EVEN: False, RoundingPolicy.ROUND_HALF_UP: True}

    class LinearFakeQuant(torch.autograd.Function):
        """ESP-PPQ's linear quantization, operation for operation: round(x / s) + offset, clamp, (- offset) * s."""

        @staticmethod
        def forward(ctx, x, scale, offset, qmin, qmax, up, masked):
            scale, offset = scale.to(x.device), offset.to(x.device)
            v = x / scale
            v = v.add_(0.5).floor_() if up else v.round_()
            v = v.add_(offset)
            c = v.clamp(qmin, qmax)
            ctx.masked = masked
            if masked:
                ctx.save_for_backward(c == v)
            return c.sub_(offset).mul_(scale)

        @staticmethod
        def backward(ctx, dy):
            dx = dy * ctx.saved_tensors[0] if ctx.masked else dy
            return dx, None, None, None, None, None, None

    class Delegate(TorchQuantizeDelegator):
        def __call__(self, tensor, config):
            if config.policy.has_property(QuantizationProperty.PER_CHANNEL):
                shape = [-1 if a == config.channel_axis else 1 for a in range(tensor.ndim)]
                return LinearFakeQuant.apply(tensor, config.scale.view(shape), config.offset.view(shape),
                                              config.quant_min, config.quant_max, half_up[config.rounding], False)
            return LinearFakeQuant.apply(tensor, config.scale, config.offset, config.quant_min, config.quant_max,
                                          half_up[config.rounding], True)

    delegate, n = Delegate(), 0
    for op in graph.operations.values():
        if not isinstance(op, QuantableOperation):
            continue
        for cfg in [*op.config.input_quantization_config, *op.config.output_quantization_config]:
            pol = cfg.policy
            if (pol.has_property(QuantizationProperty.LINEAR) and not pol.has_property(QuantizationProperty.DYNAMIC)
                    and cfg.rounding in half_up and (pol.has_property(QuantizationProperty.PER_TENSOR)
                                                     or pol.has_property(QuantizationProperty.PER_CHANNEL))):
                executor.register_quantize_delegate(cfg, delegate)
                n += 1
    return n


class PoseDistillLoss:
    """The loss of the module docstring, for one head contract's outputs.

    Each term is a noise power divided by the float model's signal power averaged over reference images (not per
    image: an image without people would otherwise weigh thousands of times more)."""

    PARTS = ("score", "box", "kpt")

    def __init__(self, head, output_names: list[str]):
        self.index = {n: i for i, n in enumerate(output_names)}
        missing = [n for n in head.output_names if n not in self.index]
        if missing:
            raise UserError(f"fine-tuning: the quantized graph lacks head outputs {', '.join(missing)}")
        self.levels = [head.level_names(i) for i in range(head.num_levels)]
        self.signal = None

    def _terms(self, q: list, f: list):
        """(noise, signal) per (level, part)."""
        import torch

        out = {}
        for lv, (box, score, kpt) in enumerate(self.levels):
            p_f = torch.sigmoid(f[self.index[score]].float())
            p_q = torch.sigmoid(q[self.index[score]])
            out[lv, "score"] = (((p_q - p_f) ** 2).sum(), (p_f ** 2).sum())
            w = p_f.amax(dim=1, keepdim=True).clamp_min(ANCHOR_FLOOR)  # best class per anchor
            for key, name in (("box", box), ("kpt", kpt)):
                t = f[self.index[name]].float()
                out[lv, key] = ((w * (q[self.index[name]] - t) ** 2).sum(), (w * t ** 2).sum())
        return out

    def set_reference(self, teachers: list) -> None:
        """The signal powers, averaged over these images' float outputs."""
        acc = {}
        for f in teachers:
            for k, (_, s) in self._terms(f, f).items():
                acc[k] = acc.get(k, 0.0) + float(s)
        self.signal = {k: max(v / len(teachers), 1e-12) for k, v in acc.items()}

    def __call__(self, q: list, f: list):
        """Sum over levels of score, box and keypoint noise-to-signal; also returns the three parts."""
        parts = dict.fromkeys(self.PARTS, 0.0)
        for k, (n, _) in self._terms(q, f).items():
            parts[k[1]] = parts[k[1]] + n / self.signal[k]
        total = sum(parts.values())
        return total, {k: float(v.detach()) if hasattr(v, "detach") else float(v) for k, v in parts.items()}


def distill(graph, images, head, *, epochs: float, lr: float, device: str = "cpu", log=print,
            held_out: int = HELD_OUT, seed: int = 0) -> dict:
    """Fine-tune `graph` (ESP-PPQ, quantized, parameters not baked) in place; return what was done and measured.

    `images`: tensors [N,3,H,W] or a list of them (the calibration inputs). `epochs` may be fractional (0.5: half of
    the training images once)."""
    import torch
    from esp_ppq.executor import TorchExecutor
    from esp_ppq.IR import QuantableOperation

    if epochs <= 0 or lr <= 0 or not math.isfinite(lr):
        raise UserError(f"fine-tuning needs epochs > 0 and a learning rate > 0 (got {epochs}, {lr})")
    t0 = time.time()
    xs = [x for b in (images if isinstance(images, (list, tuple)) else [images]) for x in b.split(1)]
    if len(xs) < 2:
        raise UserError("fine-tuning needs at least 2 calibration images")
    held = min(held_out, max(1, len(xs) // 4))
    train, ev = xs[:-held], xs[-held:]
    names = list(graph.outputs)
    loss_fn = PoseDistillLoss(head, names)
    ex = TorchExecutor(graph, device=device)
    fast_fake_quant(ex, graph)
    quantable = [op for op in graph.operations.values() if isinstance(op, QuantableOperation)]

    def teacher(x):
        for op in quantable:
            op.dequantize()
        try:
            with torch.no_grad():
                return [y.detach() for y in ex.forward(x.float().to(device), output_names=names)]
        finally:
            for op in quantable:
                op.restore_quantize_state()

    def held_out_loss():
        tot, parts = 0.0, dict.fromkeys(loss_fn.PARTS, 0.0)
        with torch.no_grad():
            for x, f in zip(ev, ev_teacher):
                l, p = loss_fn(ex.forward(x.float().to(device), output_names=names), f)
                tot += float(l)
                for k in parts:
                    parts[k] += p[k]
        return tot / len(ev), {k: round(v / len(ev), 5) for k, v in parts.items()}

    ev_teacher = [teacher(x) for x in ev]
    loss_fn.set_reference(ev_teacher)
    params = _graph_params(graph)
    backup = [v.value.detach().clone() for v in params]
    before, before_parts = held_out_loss()
    log(f"fine-tune: held-out loss {before:.4f} before ({len(train)} training, {len(ev)} held-out images)")

    n_steps = max(1, int(round(epochs * len(train))))
    gen = torch.Generator().manual_seed(seed)
    order = []
    while len(order) < n_steps:
        order += torch.randperm(len(train), generator=gen).tolist()
    order = order[:n_steps]
    for v in params:
        v.value.requires_grad_(True)
    opt = torch.optim.Adam([v.value for v in params], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / n_steps)))
    running = None
    try:
        with torch.enable_grad():
            cache = {}  # the float outputs of a training image, computed once (fp16: ~2 MB per image at 640)
            for step, i in enumerate(order):
                x = train[i]
                if i in cache:
                    f = [t.float() for t in cache[i]]
                else:
                    f = teacher(x)
                    if epochs > 1:
                        cache[i] = [t.half() for t in f]
                q = ex.forward_with_gradient(x.float().to(device), output_names=names)
                loss, _ = loss_fn(q, f)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                val = float(loss.detach())
                running = val if running is None else 0.9 * running + 0.1 * val
                if (step + 1) % max(1, n_steps // 10) == 0 or step + 1 == n_steps:
                    log(f"fine-tune: step {step + 1}/{n_steps}, loss {running:.4f} ({time.time() - t0:.0f} s)")
    finally:
        for v in params:
            v.value.requires_grad_(False)
            v.value.grad = None
    after, after_parts = held_out_loss()
    kept = after < before
    if not kept:  # never ship a fine-tune that made the held-out images worse
        with torch.no_grad():
            for v, b in zip(params, backup):
                v.value.copy_(b)
    log(f"fine-tune: held-out loss {after:.4f} after; {'kept' if kept else 'discarded (no better)'} "
        f"({time.time() - t0:.0f} s)")
    return {"epochs": epochs, "lr": lr, "steps": n_steps, "train_images": len(train), "held_out_images": len(ev),
            "params": len(params), "loss_before": round(before, 5), "loss_after": round(after, 5),
            "parts_before": before_parts, "parts_after": after_parts, "kept": kept,
            "seconds": round(time.time() - t0, 1)}
