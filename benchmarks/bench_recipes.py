#!/usr/bin/env python3
"""What each step of the accurate recipe buys: one table on the val set, every row run by the executor. Not a test.

  python benchmarks/bench_recipes.py --target esp32s3 [--imgsz 640] [--rows fast fast-all ... ] [--work DIR]
                                     [--out FILE.md]

Rows, each a quantization of the same ONNX (exported once) with one more step than the row before:
  fast        the default recipe (`idf.py build` regeneration), default number of calibration images
  fast-all    the same with every calibration image
  calib       accurate: calibration method chosen by measurement + clip guard
  int16       + mixed precision under --int16-budget (share of MACs), ranked by measured sensitivity
  logits      + finer scales for the score logits
  finetune    + label-free fine-tuning against the float model (= `--recipe accurate --int16-budget B`)
then Espressif's published files for the chip (at 640) and any --extra .espdl (our shipped models).

Each build runs in its own process: "recipe s" is its wall time (measurements, quantization, fine-tuning, export),
"peak GB" its peak resident memory. Builds are kept under --work and reused (--rebuild to redo them). The float row
is the exported ONNX through the same letterbox; "AP / float" is what quantization costs.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from _common import emit_table, git_commit  # noqa: E402

sys.path.insert(0, str(REPO / "tools"))
SHARED = Path(os.environ.get("YOLO11_POSE_SHARED") or REPO.parent / "shared")
DATA = SHARED / "data" / "coco-pose-mini"
REFERENCE = SHARED / "models" / "espdl-reference"

_OFF = {"calibration": False, "clip_guard": False, "logit_scales": False, "bias_correct": False, "tqt": False,
        "finetune": False}
#: tag -> (label, recipe, all images?, int16 budget?, steps switched on over the bare accurate recipe)
ROWS = {
    "fast": ("fast (default)", "fast", False, False, None),
    "fast-all": ("fast, every calibration image", "fast", True, False, None),
    "calib": ("accurate: calibration chosen + clip guard", "accurate", True, False,
              {"calibration": True, "clip_guard": True}),
    "int16": ("+ int16 by sensitivity", "accurate", True, True, {"calibration": True, "clip_guard": True}),
    "logits": ("+ score logit scales", "accurate", True, True,
               {"calibration": True, "clip_guard": True, "logit_scales": True}),
    "finetune": ("+ label-free fine-tuning (accurate)", "accurate", True, True,
                 {"calibration": True, "clip_guard": True, "logit_scales": True, "finetune": True}),
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build_one(spec: dict) -> None:
    """Child process: one quantization; writes bench.json (wall time, peak memory) beside the build."""
    from yolo11_pose.make.quantize import quantize

    t = time.time()
    quantize(spec["onnx"], spec["target"], 8, spec["calib"], spec["num_calib"], spec["out"], recipe=spec["recipe"],
             int16_budget=spec["int16_budget"], steps=spec["steps"], progress=False)
    Path(spec["out"], "bench.json").write_text(json.dumps({
        "seconds": round(time.time() - t, 1),
        "peak_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)}) + "\n")


def count_images(calib: str) -> int:
    from yolo11_pose.make.quantize import resolve_images

    return len(resolve_images(calib))


def main() -> int:
    from yolo11_pose import cfg

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", required=True, choices=sorted(cfg.TARGET_ROUNDING))
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    ap.add_argument("--int16-budget", type=float, default=0.1, help="share of MACs for the int16 rows (default 0.1)")
    ap.add_argument("--weights", default=str(SHARED / "models" / "yolo11n-pose.pt"))
    ap.add_argument("--calib", default=str(DATA / "calibration.txt"))
    ap.add_argument("--annotations", default=str(DATA / "annotations" / "person_keypoints_val.json"))
    ap.add_argument("--images", default=str(DATA / "images"))
    ap.add_argument("--extra", nargs="*", default=[], help="more .espdl files to score (our shipped models)")
    ap.add_argument("--work", default="/tmp/yolo11_pose_bench_recipes")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--max-images", type=int, default=None, help="score only the first N val images (smoke runs)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--build-one", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.build_one:
        build_one(json.loads(a.build_one))
        return 0

    from yolo11_pose.evaluation.evaluate import evaluate
    from yolo11_pose.make.export import export_onnx

    work = Path(a.work) / f"{a.target}-{a.imgsz}"
    work.mkdir(parents=True, exist_ok=True)
    onnx = work / "onnx" / "model.onnx"
    if not onnx.is_file():
        export_onnx(a.weights, a.imgsz, onnx.parent)
    n_all = count_images(a.calib)
    built = []
    for tag in a.rows:
        label, recipe, all_images, budget, steps = ROWS[tag]
        out = work / tag
        if a.rebuild or not (out / "bench.json").is_file():
            spec = {"onnx": str(onnx), "target": a.target, "calib": a.calib,
                    "num_calib": n_all if all_images else cfg.NUM_CALIB, "out": str(out), "recipe": recipe,
                    "int16_budget": a.int16_budget if budget else None,
                    "steps": None if steps is None else {**_OFF, **steps}}
            log(f"building {tag} ...")
            subprocess.run([sys.executable, __file__, "--target", a.target, "--build-one", json.dumps(spec)],
                           check=True)
        built.append((tag, label, out))
    # Espressif's published files are 640 models: espdl-reference/<p4|s3>/
    refs = sorted((REFERENCE / a.target.replace("esp32", "")).glob("*.espdl")) if a.imgsz == 640 else []
    specs = [str(onnx)] + [str(d) for _, _, d in built] + [f"{p}@{a.target}" for p in refs + [Path(e) for e in a.extra]]
    log(f"evaluating {len(specs)} models ...")
    rows = evaluate(specs, a.images, a.annotations, a.imgsz, max_images=a.max_images, log=log)
    int8_bytes = None
    lines = [f"Date {time.strftime('%Y-%m-%d')}, commit {git_commit()}, {os.cpu_count()} cores, {a.target} "
             f"{a.imgsz}x{a.imgsz}, weights {Path(a.weights).name}, calibration {Path(a.calib).name} ({n_all} images), "
             f"val set {Path(a.annotations).name} ({rows[0]['images']} images), outputs as ESP-DL computes them "
             "(executor), AP / float at the same input size.", "",
             "| row | OKS AP | AP50 | AP / float | .espdl MB | size / all-int8 | MACs in int16 | recipe s | peak GB "
             "| what the step decided |", "|---|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows):
        if i == 0:
            lines.append(f"| float (ONNX) | {r['AP']:.3f} | {r['AP50']:.3f} | 1.000 | | | | | | |")
            continue
        if i <= len(built):
            tag, label, d = built[i - 1]
            man = json.loads((d / "manifest.json").read_text())
            b = json.loads((d / "bench.json").read_text())
            size = man["espdl_bytes"]
            if not man["recipe"].get("int16_ops"):
                int8_bytes = int8_bytes or size
            mac = man["recipe"].get("int16", {}).get("mac_share", 0.0)
            lines.append(f"| {label} | {r['AP']:.3f} | {r['AP50']:.3f} | {r['ratio']:.3f} | {size / 1e6:.2f} | "
                         f"{size / int8_bytes if int8_bytes else float('nan'):.3f} | {mac:.1%} | {b['seconds']:.0f} "
                         f"| {b['peak_gb']:.2f} | {decided(man)} |")
        else:
            p = Path(specs[i].rsplit("@", 1)[0])
            lines.append(f"| {p.name} | {r['AP']:.3f} | {r['AP50']:.3f} | {r['ratio']:.3f} | "
                         f"{p.stat().st_size / 1e6:.2f} | | | | | |")
    emit_table(lines, a.out)
    return 0


def decided(man: dict) -> str:
    """One line of what the recipe measured and chose, from the build's manifest."""
    r = man["recipe"]
    parts = [f"{man['settings']['num_calib']} images, {r['calibration']['method']}"]
    if "candidates" in r["calibration"]:
        parts[-1] += " (" + ", ".join(f"{k} {v['nsr']:.3f}" for k, v in r["calibration"]["candidates"].items()) + ")"
    if "clip_guard" in r:
        parts.append(f"clip guard {len(r['clip_guard']['recalibrated_minmax'])} op(s)")
    if "int16" in r:
        parts.append(f"{len(r['int16']['layers'])} layers int16")
    if "logit_scales" in r:
        parts.append(f"logits 2^{r['logit_scales']['exponent']}")
    if "finetune" in r:
        f = r["finetune"]
        parts.append(f"fine-tune {f['steps']} steps, held-out loss {f['loss_before']:.3f} -> {f['loss_after']:.3f}"
                     f"{'' if f['kept'] else ' (discarded)'}")
    return "; ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
