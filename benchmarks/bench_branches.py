#!/usr/bin/env python3
"""YOLO26-pose: which head branch quantizes better, end-to-end one2one (top-k) or one2many (NMS)? Not a test.

  python benchmarks/bench_branches.py --weights yolo26n-pose.pt --imgsz 640 --num-calib 256 --out results/branches.md
  python benchmarks/bench_branches.py --random --imgsz 320 --num-calib 16 --max-images 16   # mechanics only

For each branch it builds the model (`yolo11_pose.make.build.build(..., branch=B)`: export, ESP-PPQ int8), then scores, on
the COCO val subset of coco-pose-mini, (1) the float export and the int8 twin (executor + C++ postprocessor) against
the labels (OKS AP; the ratio int8/float is what quantization costs that branch), and (2) the int8 twin against its
own float model's predictions (AP against pseudo labels, and each output's signal-to-noise ratio in dB).

With ``--random`` the weights are a random-weight checkpoint of yolo26-pose.yaml (tests/test_heads.py's
``pose_checkpoint``): that only checks that both branches go through build, twin and eval. Random weights say nothing
about which branch quantizes better for a trained model (the two branches are different random functions): run it
with trained weights (the official yolo26n-pose.pt, which Ultralytics downloads, or your own checkpoint).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO))

from benchmarks._common import emit_table, git_commit
from yolo11_pose.make.build import build
from yolo11_pose.evaluation.evaluate import evaluate

SHARED = REPO.parent / "shared"
COCO = SHARED / "data" / "coco-pose-mini"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None, help="a YOLO26-pose checkpoint (e.g. yolo26n-pose.pt)")
    ap.add_argument("--random", action="store_true", help="random weights of yolo26-pose.yaml (mechanics only)")
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--target", default="esp32p4")
    ap.add_argument("--num-calib", type=int, default=64)
    ap.add_argument("--calib", default=str(COCO / "calibration.txt"))
    ap.add_argument("--annotations", default=str(COCO / "annotations" / "person_keypoints_val.json"))
    ap.add_argument("--images", default=str(COCO / "images"))
    ap.add_argument("--max-images", type=int, default=None)
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "yolo11_pose_bench_branches"))
    ap.add_argument("--out", default=None, help="also write the Markdown here")
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    if a.random == bool(a.weights):
        ap.error("give --weights CHECKPOINT or --random")
    weights = a.weights
    if a.random:
        from tests.test_heads import pose_checkpoint

        weights = str(work / "yolo26n-pose-random.pt")
        if not Path(weights).is_file():
            pose_checkpoint(Path(weights), "26/yolo26-pose.yaml", nc=1, kpt_shape=(17, 3))
    lines = [f"# YOLO26-pose: one2one vs one2many after int8 quantization ({a.target}, {a.imgsz}x{a.imgsz})", "",
             f"Weights `{Path(weights).name}`{' (RANDOM: mechanics check only, no accuracy conclusion)' if a.random else ''}"
             f"; {a.num_calib} calibration images; commit {git_commit()}; {time.strftime('%Y-%m-%d')}.", "",
             ("| branch | float AP | int8 AP | int8/float | int8 AP vs own float | "
              "output SNR dB (box/score/kpt, stride 8/16/32) |"), "|---|---|---|---|---|---|"]
    for branch in ("one2one", "one2many"):
        out = work / f"{branch}-{a.imgsz}"
        build(weights, a.imgsz, a.target, 8, a.calib, a.num_calib, out, progress=False, log=lambda *_: None,
              branch=branch)
        lab = evaluate([str(out / "model.onnx"), str(out)], a.images, a.annotations, max_images=a.max_images,
                       log=lambda *_: None)
        own = evaluate([str(out)], a.images, a.annotations, against_float=str(out / "model.onnx"),
                       max_images=a.max_images, log=lambda *_: None)[0]
        snr = own["snr_db"]
        per = "; ".join("/".join(f"{snr[f'{k}{lv}']:.1f}" for k in ("box", "score", "kpt")) for lv in range(3))
        ratio = lab[1]["AP"] / lab[0]["AP"] if lab[0]["AP"] else float("nan")
        lines.append(f"| {branch} | {lab[0]['AP']:.3f} | {lab[1]['AP']:.3f} | {ratio:.3f} | {own['AP']:.3f} | {per} |")
        print(lines[-1], flush=True)
    emit_table(lines, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
