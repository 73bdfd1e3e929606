"""Quantization recipes: the ESP-PPQ setting (and int16 dispatching) a build uses, chosen by one name.

``fast`` (the default, for regeneration during ``idf.py build``): ESP-PPQ's ESP-DL setting with one change, a
calibration method that does not clip. ESP-PPQ's default KL calibration picks, for some activations, the smallest
threshold it can (128 of 4096 histogram bins, 1/32 of the observed maximum): on ESP32-S3 at 640 it put the C2PSA exit,
the upsample and the neck concat at exponent -9 (range +-0.25) and clipped 45 % of their values, which is why our S3
models lost so much (see ``benchmarks/results/recipes.md``).

``accurate`` (no labels; only the calibration images and the float model): every step is measured against the float
model's own outputs on the calibration images and recorded in the manifest:

1. ``calibration``: each of :data:`CALIB_METHODS` calibrates the graph on a subset of the images; the one with the
   least output noise wins (per layer: activations that the winner still clips are recalibrated with ``minmax``);
2. ``int16``: with ``int16_budget`` (share of MACs, or of the all-int8 file with ``int16_budget_kind="size"``), every
   computing layer is put back to float one at a time in the int8 graph; the output noise each one removes, per MAC
   (or byte), ranks them, and the best go to int16 until the budget is spent;
3. ``logit_scales``: logits that feed a sigmoid (the ``score*`` outputs) get the finest power-of-two scale that still
   covers probabilities 0.001..0.999 (|logit| <= 6.9) instead of the calibrated one;
4. ``bias_correct``: ESP-PPQ's bias correction (per-channel mean error of each layer removed);
5. ``tqt``: ESP-PPQ's trained quantization thresholds (power-of-two scales and weights trained block by block to
   match the float block outputs);
6. ``finetune``: the whole quantized network's weights trained against the float model's outputs (finetune.py; what
   ``yolo11-pose qat`` does for longer).
Steps 4 and 5 are on by default only with ``device="cuda"``: ESP-PPQ collects every block's inputs by running the
graph over all calibration batches once per block (~57 blocks), which takes hours at 640 on two CPU cores.

``--device cuda`` passes through to ESP-PPQ (executor, cache of the training passes) and torch.
"""
from __future__ import annotations

import contextlib
import ctypes
import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from yolo11_pose import cfg
from yolo11_pose.make.ppq_env import _quiet, espdl_export_fixes, import_ppq
from yolo11_pose.util import UserError

RECIPES = cfg.setting("recipe").choices  # ("fast", "accurate")
DEFAULT_RECIPE = cfg.setting("recipe").default
CALIB_METHODS = ("kl", "percentile", "mse", "minmax")
#: ``fast`` calibration: measured at 640 on ESP32-S3 and ESP32-P4 (benchmarks/results/recipes.md).
FAST_CALIB = "percentile"
BUDGET_KINDS = ("macs", "size")
#: logit(0.999): the score logits the postprocessor can tell apart (COCO evaluation keeps scores down to 0.001).
SIGMOID_LOGIT_RANGE = 6.9
#: the graph outputs that are logits of a sigmoid (export.py names them score0..2).
LOGIT_OUTPUTS = ("score0", "score1", "score2")
#: images used by the measurements (method choice and sensitivity); the final calibration uses all of them.
MEASURE_CALIB_IMAGES = 32
MEASURE_EVAL_IMAGES = 8
SENSITIVITY_IMAGES = 4
#: activations still clipping more than this share of their values after calibration are recalibrated with minmax.
CLIP_GUARD = 0.01
TQT_STEPS, TQT_LR, TQT_BLOCK = 100, 2e-5, 4
BIAS_CORRECT_STEPS = 4  # calibration batches whose mean error each bias correction block measures
COMPUTING_TYPES = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def limit_malloc_growth() -> None:
    """Return freed tensor memory to the OS.

    With glibc's default thresholds ESP-PPQ's calibration at 640 grew from 3.75 GB (64 images) to more than 11 GB (263
    images) through heap fragmentation; with large blocks served by mmap it peaks at 1.8 GB for 128 images.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


@dataclass
class Plan:
    """What a recipe decided: the ESP-PPQ setting (dispatching table included) and what to record."""

    recipe: str
    setting: object
    int16_ops: list = field(default_factory=list)
    info: dict = field(default_factory=dict)
    #: keyword arguments of finetune.distill (epochs, lr), or None: no fine-tuning
    finetune: dict | None = None


def check_args(recipe: str, int16_budget: float | None, device: str, budget_kind: str = "macs") -> None:
    cfg.make_settings(recipe=recipe, int16_budget=int16_budget, device=device)
    if budget_kind not in BUDGET_KINDS:
        raise UserError(f"unknown int16 budget kind {budget_kind!r}; use one of {', '.join(BUDGET_KINDS)}")
    check_device(device)


def check_device(device: str) -> None:
    """--device of every command that takes one: cpu, or a CUDA device torch can see."""
    cfg.check_device(device)
    if str(device).startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: torch sees no CUDA device here; drop --device or use cpu")


def int16_platform(target: str):
    from esp_ppq.api.espdl_interface import get_target_platform

    return get_target_platform(target, "w16a16")


#: ops that only move values: a chain of them between a Softmax and an int16 layer is where the Softmax gets quantized
_MOVE_TYPES = ("Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze")


def int16_dispatch(onnx_path, int16_ops) -> list[str]:
    """The ops to put on the int16 platform for these int16 layers: the layers, plus any Transpose/Reshape chain
    between a Softmax and one of them.

    ESP-DL's Softmax outputs float, and the exported file quantizes it once, straight to the dtype of the layer that
    reads it (QuantizeLinear S16 before the attention's int16 ``MatMul_1``). ESP-PPQ keeps the Softmax output in float
    too, but quantizes it at the first quantized op that reads it: the ``Transpose_1`` between them, int8 unless it
    is dispatched too. Left int8, ESP-PPQ simulated the probabilities in steps of 2**-8 where the chip has 2**-16
    (up to 906 int16 steps apart at the MatMul_1 output of an S3 416 build), and calibration, ranking and fine-tuning
    optimised that other function."""
    ops = list(dict.fromkeys(int16_ops))
    if not ops:
        return ops
    import onnx

    m = onnx.load(str(onnx_path), load_external_data=False)
    producer = {o: n for n in m.graph.node for o in n.output}
    extra = []
    for n in m.graph.node:
        if n.name not in ops:
            continue
        for i in n.input:
            chain, p = [], producer.get(i)
            while p is not None and p.op_type in _MOVE_TYPES:
                chain.append(p.name)
                p = producer.get(p.input[0])
            if p is not None and p.op_type == "Softmax":
                extra += chain
    return list(dict.fromkeys(ops + extra))


def base_setting(bits: int, calib_algorithm: str | None):
    from esp_ppq.api.setting import QuantizationSettingFactory

    s = QuantizationSettingFactory.espdl_setting(num_of_bits=bits)
    # ESP-PPQ 1.3.12 rewrites int16 activations into explicit int16 ``LUT`` nodes (EspdlLUTFusionPass). No ESP-DL
    # output we hold as evidence covers an int16 LUT node, and which releases read which int16 tables is the version
    # question of compat.py: int16 activations stay plain Swish/Sigmoid, computed in float on ESP-DL 3.3.9 (chipsim).
    s.lut_optimization = False
    if bits == 8 and calib_algorithm:
        s.quantize_activation_setting.calib_algorithm = calib_algorithm
    return s


# ----------------------------------------------------------------------------------------------- model facts
def onnx_costs(onnx_path: str | Path) -> dict[str, dict]:
    """MACs and parameter bytes (at int8) of every computing node of the ONNX graph, by node name."""
    import onnx
    from onnx import numpy_helper, shape_inference

    m = shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    shapes = {}
    for vi in list(m.graph.value_info) + list(m.graph.output) + list(m.graph.input):
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        shapes[vi.name] = dims
    inits = {i.name: numpy_helper.to_array(i).shape for i in m.graph.initializer}
    for i in m.graph.initializer:
        shapes[i.name] = list(inits[i.name])
    out = {}
    for n in m.graph.node:
        if n.op_type == "Conv":
            w = shapes.get(n.input[1])
            y = shapes.get(n.output[0])
            if not w or not y:
                continue
            macs = int(np.prod(y[1:])) * int(np.prod(w[1:]))
            params = int(np.prod(w)) + (int(w[0]) if len(n.input) > 2 else 0)
            out[n.name] = {"type": "Conv", "macs": macs, "params": params, "out_elems": int(np.prod(y[1:]))}
        elif n.op_type in ("MatMul", "Gemm"):
            a = shapes.get(n.input[0])
            y = shapes.get(n.output[0])
            if not a or not y:
                continue
            k = a[-1]
            macs = int(np.prod(y)) * int(k)
            params = int(np.prod(inits[n.input[1]])) if n.input[1] in inits else 0
            out[n.name] = {"type": n.op_type, "macs": macs, "params": params, "out_elems": int(np.prod(y[1:]))}
    return out


def logit_ops(graph) -> list[str]:
    """Operations whose output is a sigmoid logit (graph outputs named in LOGIT_OUTPUTS)."""
    names = []
    for name, var in graph.outputs.items():
        if name in LOGIT_OUTPUTS and var.source_op is not None:
            names.append(var.source_op.name)
    return names


# ----------------------------------------------------------------------------------------------- measurement
def quantize_graph(onnx_path, target: str, bits: int, batches: list, setting, device: str = "cpu"):
    """ESP-PPQ quantization without export (for measurements); returns the quantized graph."""
    from esp_ppq.api import espdl_quantize_onnx

    work = Path(tempfile.mkdtemp(prefix=".recipe-"))
    try:
        src = work / "input.onnx"
        shutil.copyfile(onnx_path, src)
        shape = list(batches[0].shape)
        with _quiet(False), grad_mode(setting):
            return espdl_quantize_onnx(
                onnx_import_file=str(src), espdl_export_file=str(work / "m.espdl"), calib_dataloader=batches,
                calib_steps=len(batches), input_shape=[1, *shape[1:]], target=target, num_of_bits=bits,
                collate_fn=lambda b: b.float().to(device), setting=setting, device=device, error_report=False,
                skip_export=True, verbose=0)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def needs_grad(setting) -> bool:
    """Training passes (TQT, LSQ, block-wise reconstruction) need autograd: never run them under torch.no_grad()."""
    return bool(getattr(setting, "tqt_optimization", False) or getattr(setting, "lsq_optimization", False)
                or getattr(setting, "blockwise_reconstruction", False))


def grad_mode(setting):
    """The autograd context a quantization with `setting` must run in."""
    import torch

    return torch.enable_grad() if needs_grad(setting) else torch.no_grad()


class OutputNoise:
    """Noise-to-signal power of the graph outputs against the same graph in float, on fixed inputs.

    The float outputs are computed once; ``measure()`` runs the graph as currently quantized (operations can be
    dequantized in between, which is how sensitivity is measured)."""

    def __init__(self, graph, xs, device: str = "cpu"):
        import torch
        from esp_ppq.executor import TorchExecutor
        from esp_ppq.IR import QuantableOperation

        from yolo11_pose.make.finetune import fast_fake_quant

        self.graph, self.device = graph, device
        self.xs = [x.float().to(device) for x in xs]
        self.outputs = list(graph.outputs)
        self.executor = TorchExecutor(graph, device=device)
        fast_fake_quant(self.executor, graph)  # ESP-PPQ's values, 2-3x faster
        self.quantable = [op for op in graph.operations.values() if isinstance(op, QuantableOperation)]
        for op in self.quantable:
            op.dequantize()
        try:
            with torch.no_grad():
                self.fp = [[y.detach().double().cpu() for y in self.executor.forward(x, output_names=self.outputs)]
                           for x in self.xs]
        finally:
            for op in self.quantable:
                op.restore_quantize_state()

    def measure(self) -> dict[str, float]:
        import torch

        sig = dict.fromkeys(self.outputs, 0.0)
        noise = dict.fromkeys(self.outputs, 0.0)
        with torch.no_grad():
            for x, fp in zip(self.xs, self.fp):
                for name, q, f in zip(self.outputs, self.executor.forward(x, output_names=self.outputs), fp):
                    q = q.detach().double().cpu()
                    sig[name] += float((f ** 2).sum())
                    noise[name] += float(((q - f) ** 2).sum())
        return {k: noise[k] / max(sig[k], 1e-30) for k in self.outputs}

    @staticmethod
    def mean(nsr: dict[str, float]) -> float:
        """One number per graph: the mean over outputs of the noise-to-signal ratio (each output weighs the same)."""
        return float(np.mean(list(nsr.values())))


def clipping_activations(graph, xs, device: str = "cpu", limit: float = CLIP_GUARD) -> dict[str, float]:
    """Operations whose (dominating) output quantization clips more than `limit` of the float values."""
    import torch
    from esp_ppq.executor import TorchExecutor
    from esp_ppq.IR import QuantableOperation

    ops = [op for op in graph.operations.values() if isinstance(op, QuantableOperation)]
    watch = []
    for op in ops:
        cfg = op.config.output_quantization_config[0] if op.config.output_quantization_config else None
        if cfg is None or cfg.scale is None or cfg.dominated_by is not cfg or op.outputs[0].name in graph.outputs:
            continue
        watch.append((op, cfg))
    names = [op.outputs[0].name for op, _ in watch]
    ex = TorchExecutor(graph, device=device)
    clipped = dict.fromkeys(names, 0.0)
    total = dict.fromkeys(names, 0)
    for op in ops:
        op.dequantize()
    try:
        with torch.no_grad():
            for x in xs:
                ys = ex.forward(x.float().to(device), output_names=names)
                for (op, cfg), name, y in zip(watch, names, ys):
                    lim = float(cfg.scale.reshape(-1)[0]) * cfg.quant_max
                    clipped[name] += float((y.abs() > lim * 1.0001).sum())
                    total[name] += y.numel()
    finally:
        for op in ops:
            op.restore_quantize_state()
    out = {}
    for (op, _), name in zip(watch, names):
        share = clipped[name] / max(total[name], 1)
        if share > limit:
            out[op.name] = share
    return out


def _subsets(batches: list, n_calib: int, n_eval: int):
    import torch

    x = torch.cat(list(batches))
    n = len(x)
    ev = x[-min(n_eval, max(1, n // 4)):]
    cal = x[:min(n_calib, n - len(ev))]
    step = max(1, min(8, len(cal) // 8))
    return [cal[i:i + step] for i in range(0, len(cal), step)], [ev[i:i + 4] for i in range(0, len(ev), 4)]


def choose_calibration(onnx_path, target, batches, device="cpu", methods=CALIB_METHODS, log=print,
                       return_graph: bool = False):
    """Calibrate with each method on a subset, measure output noise on held-out calibration images, keep the best."""
    cal, ev = _subsets(batches, MEASURE_CALIB_IMAGES, MEASURE_EVAL_IMAGES)
    scores, graphs = {}, {}
    for m in methods:
        t = time.time()
        g = quantize_graph(onnx_path, target, 8, cal, base_setting(8, m), device)
        nsr = OutputNoise(g, ev, device).measure()
        scores[m] = {"nsr": round(OutputNoise.mean(nsr), 5), "per_output": {k: round(v, 5) for k, v in nsr.items()},
                     "seconds": round(time.time() - t, 1)}
        log(f"recipe: calibration {m}: output noise {scores[m]['nsr']:.4f} ({scores[m]['seconds']:.0f} s)")
        best = min(scores, key=lambda k: scores[k]["nsr"])
        graphs = {best: graphs.get(best, g)}  # keep only the best graph (the later steps measure on it)
    best = min(scores, key=lambda k: scores[k]["nsr"])
    info = {"method": best, "candidates": scores, "images": sum(len(b) for b in cal),
            "eval_images": sum(len(b) for b in ev)}
    return (info, graphs[best]) if return_graph else info


def rank_int16(graph, xs, costs: dict, device="cpu", log=print) -> list[dict]:
    """Each computing layer (with the activation fused after it) back in float, alone, in the int8 graph: the output
    noise it removes. Sorted best gain per MAC first."""
    from esp_ppq.IR import QuantableOperation

    meter = OutputNoise(graph, xs, device)
    base = OutputNoise.mean(meter.measure())
    rows = []
    for op in list(graph.operations.values()):
        if not isinstance(op, QuantableOperation) or op.type not in COMPUTING_TYPES or op.name not in costs:
            continue
        group = [op] + [d for d in op.outputs[0].dest_ops if isinstance(d, QuantableOperation) and d.type == "Swish"]
        for o in group:
            o.dequantize()
        try:
            nsr = OutputNoise.mean(meter.measure())
        finally:
            for o in group:
                o.restore_quantize_state()
        c = costs[op.name]
        rows.append({"op": op.name, "with": [o.name for o in group[1:]], "gain": base - nsr, "macs": c["macs"],
                     "params": c["params"]})
    log(f"recipe: int16 sensitivity of {len(rows)} layers measured (int8 output noise {base:.4f})")
    return rows, base


def pick_int16(rows: list[dict], costs: dict, budget: float, kind: str = "macs", int8_bytes: int | None = None):
    """Greedy knapsack: best measured gain per unit of cost until the budget (share of MACs or of file size)."""
    total_macs = sum(c["macs"] for c in costs.values())
    total = total_macs if kind == "macs" else (int8_bytes or sum(c["params"] for c in costs.values()))
    key = "macs" if kind == "macs" else "params"
    # int16 doubles a layer's parameter bytes (weights int16; the bias stays wide either way), and its output's:
    # a layer whose int16 output would outgrow the largest int8 activation is left out, so that int16 never raises
    # the activation memory ESP-DL plans (the ESP32-S3 640 model's int16 stem once needed 107 % of 8 MB of PSRAM)
    cap = max((c.get("out_elems", 0) for c in costs.values()), default=0) // 2
    fits = [r for r in rows if costs.get(r["op"], {}).get("out_elems", 0) <= cap or not cap]
    cands = sorted((r for r in fits if r["gain"] > 0), key=lambda r: -r["gain"] / max(r[key], 1))
    spent, chosen = 0, []
    for r in cands:
        if (spent + r[key]) / total <= budget:
            chosen.append(r)
            spent += r[key]
    return chosen, spent / total, sum(r["macs"] for r in chosen) / total_macs


def trial_psram(onnx_path, target: str, batches: list, method: str, int16_ops: list[str], device: str = "cpu") -> int:
    """PSRAM ESP-DL would allocate for the model with these int16 layers: quantized on a few images, exported as the
    build exports it, planned by memory.py (ESP-DL's greedy planner). The layout does not depend on the images
    (only a few int8 -> int8 requantizations do, through the calibrated exponents)."""
    from esp_ppq.api.espdl_interface import _resolve_quant_type_and_bits, get_target_platform
    import esp_ppq.lib as PFL

    from yolo11_pose.espdl import memory

    setting = base_setting(8, method)
    plat = int16_platform(target)
    for name in int16_dispatch(onnx_path, int16_ops):
        setting.dispatching_table.append(name, plat)
    work = Path(tempfile.mkdtemp(prefix=".psram-"))
    try:
        with espdl_export_fixes():
            graph = quantize_graph(onnx_path, target, 8, batches, setting, device)
            with _quiet(False):
                PFL.Exporter(platform=get_target_platform(target, _resolve_quant_type_and_bits(None, 8)[0])).export(
                    file_path=str(work / "m.espdl"), graph=graph, values_for_test=None, export_config=True,
                    int16_lut_step=-1)
        return memory.plan(work / "m.espdl", target).psram_bytes
    finally:
        shutil.rmtree(work, ignore_errors=True)


def fit_psram(chosen: list[dict], costs: dict, need, limit: float, log=print) -> tuple[list[dict], list[dict]]:
    """Leave out int16 layers, those with the largest outputs first (a whole size at a time), until ``need(ops)``
    (trial_psram) is within ``limit``. Returns the layers kept and each trial."""
    trials = []
    while chosen:
        ops = [n for r in chosen for n in (r["op"], *r["with"])]
        trials.append({"int16_layers": len(chosen), "psram_bytes": need(ops)})
        if trials[-1]["psram_bytes"] <= limit:
            break
        size = max(costs.get(r["op"], {}).get("out_elems", 0) for r in chosen)
        dropped = [r["op"] for r in chosen if costs.get(r["op"], {}).get("out_elems", 0) == size]
        log(f"recipe: {trials[-1]['psram_bytes'] / 1e6:.2f} MB of PSRAM with {len(chosen)} int16 layer(s), over "
            f"{limit / 1e6:.2f} MB: back to int8 for {', '.join(dropped)}")
        chosen = [r for r in chosen if r["op"] not in dropped]
    return chosen, trials


# ----------------------------------------------------------------------------------------------- the recipe
def make_plan(recipe: str, onnx_path, target: str, bits: int, batches: list, int16_layers=(),
              int16_budget: float | None = None, budget_kind: str = "macs", device: str = "cpu", log=print,
              steps: dict | None = None, finetune_epochs: float | None = None,
              finetune_lr: float | None = None) -> Plan:
    """plan_for() with the settings given one by one."""
    s = cfg.make_settings(recipe=recipe, target=target, bits=bits, int16_layers=list(int16_layers or ()),
                          int16_budget=int16_budget, device=device, finetune_epochs=finetune_epochs,
                          finetune_lr=finetune_lr)
    return plan_for(s, onnx_path, batches, budget_kind=budget_kind, log=log, steps=steps)


def plan_for(s: cfg.Settings, onnx_path, batches: list, budget_kind: str = "macs", log=print,
             steps: dict | None = None) -> Plan:
    """Build the ESP-PPQ setting for the recipe of settings `s` (running its measurements first).

    ``steps`` switches single steps of the accurate recipe on or off (``{"tqt": False}``), for measuring what each
    buys; unknown keys are refused. ``s.finetune_epochs``/``s.finetune_lr`` (``yolo11-pose qat``) switch the
    fine-tuning step on with these settings, whatever the recipe.
    """
    check_args(s.recipe, s.int16_budget, s.device, budget_kind)
    recipe, target, bits, device = s.recipe, s.target, s.bits, s.device
    int16_budget, finetune_epochs, finetune_lr = s.int16_budget, s.finetune_epochs, s.finetune_lr
    limit_malloc_growth()
    import_ppq()
    t0 = time.time()
    # Bias correction and TQT collect every block's inputs over all calibration batches (ESP-PPQ runs the graph up
    # to each of ~57 blocks, twice): measured hours at 640 on 2 CPU cores, so they are on by default with a GPU only.
    gpu = str(device).startswith("cuda")
    all_steps = {"calibration": True, "clip_guard": True, "int16": int16_budget is not None, "logit_scales": True,
                 "bias_correct": gpu, "tqt": gpu, "finetune": True}
    if recipe == "fast":
        all_steps = dict.fromkeys(all_steps, False)
        all_steps["int16"] = int16_budget is not None
    for k, v in (steps or {}).items():
        if k not in all_steps:
            raise UserError(f"unknown recipe step {k!r}; steps are {', '.join(all_steps)}")
        all_steps[k] = bool(v)
    if finetune_epochs is not None or finetune_lr is not None:
        all_steps["finetune"] = True
    finetune = None
    if all_steps["finetune"]:
        # the accurate recipe's CPU default keeps it within its time budget; a GPU trains like `qat`
        epochs = finetune_epochs if finetune_epochs is not None else (
            cfg.QAT_EPOCHS if gpu else cfg.ACCURATE_FINETUNE_EPOCHS)
        finetune = {"epochs": float(epochs), "lr": float(finetune_lr if finetune_lr is not None else cfg.QAT_LR)}
    info = {"recipe": recipe, "steps": {k: v for k, v in all_steps.items()}, "device": device}
    if bits == 16:
        setting = base_setting(16, None)
        info["calibration"] = {"method": "minmax"}
        return Plan(recipe, setting, [], info, finetune)

    method, graph = FAST_CALIB, None
    if all_steps["calibration"]:
        info["calibration"], graph = choose_calibration(onnx_path, target, batches, device, log=log,
                                                        return_graph=True)
        method = info["calibration"]["method"]
    else:
        info["calibration"] = {"method": method}
    setting = base_setting(8, method)

    int16_ops = list(s.int16_layers)
    cal, ev = _subsets(batches, MEASURE_CALIB_IMAGES, MEASURE_EVAL_IMAGES)
    if graph is None and (all_steps["clip_guard"] or all_steps["int16"]):
        graph = quantize_graph(onnx_path, target, 8, cal, base_setting(8, method), device)
    if all_steps["clip_guard"]:
        clips = clipping_activations(graph, [x for b in ev for x in b.split(1)], device)
        if clips:
            setting.quantize_activation_setting.calib_algorithm_per_layer.update(dict.fromkeys(clips, "minmax"))
        info["clip_guard"] = {"limit": CLIP_GUARD, "recalibrated_minmax": {k: round(v, 4) for k, v in clips.items()}}
        log(f"recipe: clip guard: {len(clips)} activation(s) clipping > {CLIP_GUARD:.0%} recalibrated with minmax")
    if all_steps["int16"]:
        costs = onnx_costs(onnx_path)
        xs = [x for b in ev for x in b.split(1)][:SENSITIVITY_IMAGES]
        import torch

        rows, base = rank_int16(graph, [torch.cat(xs)], costs, device, log)
        chosen, share, mac_share = pick_int16(rows, costs, float(int16_budget), budget_kind)
        from yolo11_pose.espdl import memory

        # int16 doubles activations, and ESP-DL's greedy planner can grow its block by more than that: measure it
        limit = memory.MODEL_PSRAM_SHARE * memory.CHIPS[target].psram_reference
        chosen, trials = fit_psram(chosen, costs, lambda ops: trial_psram(onnx_path, target, cal, method, ops, device),
                                   limit, log)
        if len(trials) > 1:  # layers were left out: the shares of those kept
            mac_share = sum(r["macs"] for r in chosen) / sum(c["macs"] for c in costs.values())
            share = mac_share if budget_kind == "macs" else \
                sum(r["params"] for r in chosen) / max(sum(c["params"] for c in costs.values()), 1)
        for r in chosen:
            int16_ops += [r["op"], *r["with"]]
        info["int16"] = {"budget": int16_budget, "kind": budget_kind, "share": round(share, 4),
                         "mac_share": round(mac_share, 4), "int8_output_noise": round(base, 5),
                         "psram_trials": trials, "psram_limit": int(limit),
                         "layers": [{"op": r["op"], "gain": round(r["gain"], 6), "macs": r["macs"]} for r in chosen],
                         "ranking": [{"op": r["op"], "gain": round(r["gain"], 6)} for r in
                                     sorted(rows, key=lambda r: -r["gain"])[:20]]}
        log(f"recipe: {len(chosen)} layer(s) to int16 ({mac_share:.1%} of MACs)")
    del graph
    plat = int16_platform(target)
    int16_ops = int16_dispatch(onnx_path, int16_ops)
    for name in int16_ops:
        setting.dispatching_table.append(name, plat)

    if all_steps["logit_scales"]:
        # the finest power-of-two scale whose int8 range still covers |logit| <= SIGMOID_LOGIT_RANGE
        exp = math.ceil(math.log2(SIGMOID_LOGIT_RANGE / 127))
        names = [n for n in _logit_op_names(onnx_path)]
        setting.quant_config_modify = True
        setting.quant_config_modify_setting.custom_config.update({n: 2.0 ** exp for n in names})
        info["logit_scales"] = {"exponent": exp, "ops": names}
    if all_steps["bias_correct"]:
        setting.bias_correct = True
        setting.bias_correct_setting.collecting_device = "cuda" if gpu else "cpu"
        setting.bias_correct_setting.steps = BIAS_CORRECT_STEPS
        info["bias_correct"] = {"block_size": setting.bias_correct_setting.block_size,
                                "steps": setting.bias_correct_setting.steps}
    if all_steps["tqt"]:
        setting.tqt_optimization = True
        t = setting.tqt_optimization_setting
        t.steps, t.lr, t.block_size = TQT_STEPS, TQT_LR, TQT_BLOCK
        t.collecting_device = "cuda" if gpu else "cpu"
        info["tqt"] = {"steps": t.steps, "lr": t.lr, "block_size": t.block_size}
    info["int16_ops"] = list(dict.fromkeys(int16_ops))
    info["plan_seconds"] = round(time.time() - t0, 1)
    return Plan(recipe, setting, info["int16_ops"], info, finetune)


def _logit_op_names(onnx_path) -> list[str]:
    import onnx

    m = onnx.load(str(onnx_path), load_external_data=False)
    src = {o: n.name for n in m.graph.node for o in n.output}
    return [src[o.name] for o in m.graph.output if o.name in LOGIT_OUTPUTS and o.name in src]


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run with `n` torch threads (None: leave as is)."""
    import torch

    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
