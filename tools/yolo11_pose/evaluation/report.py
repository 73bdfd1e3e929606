"""Per-layer quantization error: where the int8 loss comes from, as tables and a chart.

Noise-to-signal power ratio (NSR) = sum((q - f)^2) / sum(f^2), on the model outputs:
- graph-wise, per output: the whole quantized graph against the float graph (what the postprocessor sees);
- graph-wise, per layer: ESP-PPQ's analysis, error accumulated up to each layer's output;
- layer-wise: each layer quantized alone, everything else float, measured at the model outputs. Unlike ESP-PPQ's
  own layer-wise pass, the float outputs are computed once and reused for every layer, which halves the work.
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np

from yolo11_pose.util import atomic_path, write_json

MAX_IMAGES, BATCH = 16, 8  # enough for a stable ranking; few large batches because per-forward overhead dominates


def _nsr(pairs) -> float:
    sig = noise = 0.0
    for q, f in pairs:
        f = f.detach().double()
        sig += float((f ** 2).sum())
        noise += float(((q.detach().double() - f) ** 2).sum())
    return noise / max(sig, 1e-30)


def error_report(graph, batches, out_dir: str | Path, progress: bool = True, max_images: int = MAX_IMAGES) -> dict:
    import torch
    from esp_ppq.executor import TorchExecutor
    from esp_ppq.IR import QuantableOperation
    from esp_ppq.quantization.analyse import graphwise_error_analyse
    from tqdm import tqdm

    x = torch.cat(list(batches))[:max_images]
    batches = [x[i:i + BATCH] for i in range(0, len(x), BATCH)]
    outputs = list(graph.outputs)
    executor = TorchExecutor(graph, device="cpu")
    quantable = [op for op in graph.operations.values() if isinstance(op, QuantableOperation)]
    computing = [op for op in quantable if op.is_computing_op]

    def forward(b):
        with torch.no_grad():
            return executor.forward(inputs=b, output_names=outputs)

    try:
        for op in quantable:
            op.dequantize()
        fp = [forward(b) for b in batches]
        for op in quantable:
            op.restore_quantize_state()
        qt = [forward(b) for b in batches]
        per_output = {name: _nsr((q[i], f[i]) for q, f in zip(qt, fp)) for i, name in enumerate(outputs)}
        for op in quantable:
            op.dequantize()
        layerwise = {}
        for op in tqdm(computing, desc="layer-wise error", unit="layer", disable=not progress, leave=False):
            op.restore_quantize_state()
            qs = [forward(b) for b in batches]
            op.dequantize()
            layerwise[op.name] = float(np.mean([_nsr((q[i], f[i]) for q, f in zip(qs, fp))
                                                for i in range(len(outputs))]))
    finally:
        for op in quantable:
            op.restore_quantize_state()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        graphwise = graphwise_error_analyse(graph=graph, running_device="cpu", dataloader=batches,
                                            collate_fn=None, steps=len(batches), verbose=False) or {}
    report = {"metric": "noise-to-signal power ratio (0.01 = 1 %)", "images": int(sum(len(b) for b in batches)),
              "outputs": per_output,
              "graphwise": dict(sorted(((k, float(v)) for k, v in graphwise.items()), key=lambda kv: -kv[1])),
              "layerwise": dict(sorted(layerwise.items(), key=lambda kv: -kv[1]))}
    out = Path(out_dir)
    write_json(out / "error_report.json", report)
    with atomic_path(out / "error_report.md") as tmp:
        Path(tmp).write_text(format_markdown(report))
    with atomic_path(out / "error_report.png") as tmp:
        plot(report, tmp)
    # The manifest carries the headline; the full tables live beside it.
    return {"outputs": per_output, "worst_layers": dict(list(report["layerwise"].items())[:10]),
            "files": ["error_report.json", "error_report.md", "error_report.png"]}


def format_markdown(report: dict, top: int = 30) -> str:
    lines = [f"# Quantization error ({report['metric']}, {report['images']} calibration images)", "",
             "## Model outputs (whole graph quantized)", "", "| output | NSR |", "|---|---|"]
    lines += [f"| {k} | {v:.2%} |" for k, v in report["outputs"].items()]
    lines += ["", f"## Layer-wise: each layer quantized alone (worst {top}; quantize these in int16 first)", "",
              "| layer | NSR at outputs |", "|---|---|"]
    lines += [f"| `{k}` | {v:.3%} |" for k, v in list(report["layerwise"].items())[:top]]
    lines += ["", f"## Graph-wise: error accumulated up to each layer (worst {top})", "", "| layer | NSR |", "|---|---|"]
    lines += [f"| `{k}` | {v:.2%} |" for k, v in list(report["graphwise"].items())[:top]]
    return "\n".join(lines) + "\n"


def plot(report: dict, path, top: int = 20) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lw = list(report["layerwise"].items())[:top][::-1]
    outs = list(report["outputs"].items())[::-1]
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 0.32 * max(len(lw), len(outs)) + 1.5),
                               gridspec_kw={"width_ratios": [1, 2]})
    a.barh([k for k, _ in outs], [v * 100 for _, v in outs], color="#d8643b")
    a.set_xlabel("noise / signal (%)")
    a.set_title("outputs, whole graph int", fontsize=10)
    b.barh([k for k, _ in lw], [v * 100 for _, v in lw], color="#3b7dd8")
    b.set_xlabel("noise / signal at outputs (%)")
    b.set_title(f"worst {len(lw)} layers, each quantized alone", fontsize=10)
    b.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)
