#!/usr/bin/env python3
"""OKS AP / AP50 of float, 8-bit and 16-bit (and optionally letterbox-calibrated and mixed-precision) builds. Not a test.

  python benchmarks/bench_accuracy.py [--sizes 320 640] [--target esp32p4] [--num-calib 256]
                                      [--compare-calib-modes] [--int16-heads] [--no-int16] [--threads 1]
                                      [--work DIR] [--out FILE.md]

Every quantized row is a `build(...)` folder under --work (reused when up to date: same weights, calibration images
and settings), simulated by the host twin (device preprocessing, ESP-PPQ's integer executor, the component's C++
postprocessor). The float row is the ONNX of the 8-bit build, run by ONNX Runtime through the same letterbox, so the
ratio "AP / float" is what quantization costs and nothing else. All rows of one size are scored in one `evaluate(...)`
call on the COCO val subset of coco-pose-mini (92 images, ~140 people: about +-0.03 AP noise, compare side by side).
"ms/image" is host time (preprocess + model + postprocess), not chip time.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from _common import git_commit  # noqa: E402
sys.path.insert(0, str(REPO / "tools"))

from yolo11_pose.make.build import build
from yolo11_pose.evaluation.evaluate import evaluate
from yolo11_pose.make.quantize import onnx_node_names
from yolo11_pose.util import UserError, atomic_path

SHARED = Path(os.environ.get("YOLO11_POSE_SHARED") or REPO.parent / "shared")
DATA = SHARED / "data" / "coco-pose-mini"
# The 9 last 1x1 convolutions of the Pose head (box cv2, score cv3, keypoint cv4; one per level), as named in the
# exported ONNX: /model.23/cv2.0/cv2.0.2/Conv ... /model.23/cv4.2/cv4.2.2/Conv.
HEAD_CONV = re.compile(r"^/model\.(\d+)/cv([234])\.([012])/cv\2\.\3\.2/Conv$")


def head_conv_names(onnx_path: Path) -> list[str]:
    hits = [(n, HEAD_CONV.match(n)) for n in onnx_node_names(onnx_path)]
    hits = [(n, m) for n, m in hits if m]
    if not hits:
        raise UserError(f"{onnx_path} has no Pose head convolutions named like /model.N/cv2.0/cv2.0.2/Conv; "
                        "was it exported by `yolo11-pose export`?")
    last = max(int(m.group(1)) for _, m in hits)  # the head is the last module
    names = sorted(n for n, m in hits if int(m.group(1)) == last)
    if len(names) != 9:
        raise UserError(f"expected 9 head convolutions in {onnx_path}, found {len(names)}: {names}")
    return names


def variants(a) -> list[dict]:
    """Quantized configurations to build, in table order (the first one also provides the float ONNX)."""
    v = [{"tag": "int8-square", "label": "8-bit (default)", "bits": 8, "calib_mode": "square"}]
    if a.compare_calib_modes:
        v.append({"tag": "int8-letterbox", "label": "8-bit, letterbox calibration", "bits": 8,
                  "calib_mode": "letterbox"})
    if a.int16_heads:
        v.append({"tag": "int8-int16heads", "label": "8-bit + 9 head convs int16", "bits": 8,
                  "calib_mode": "square", "heads": True})
    if not a.no_int16:
        v.append({"tag": "int16", "label": "16-bit", "bits": 16, "calib_mode": "square"})
    return v


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def bench_size(a, imgsz: int) -> list[dict]:
    built = []
    heads: list[str] = []
    for v in variants(a):
        out = Path(a.work) / f"{a.target}-{imgsz}-{v['tag']}-n{a.num_calib}"
        layers = heads if v.get("heads") else []
        t0 = time.time()
        man, rebuilt = build(a.weights, imgsz, a.target, v["bits"], a.calib, a.num_calib, out,
                             calib_mode=v["calib_mode"], int16_layers=layers, progress=False, log=log)
        log(f"{out.name}: {'built in %.0f s' % (time.time() - t0) if rebuilt else 'reused'}")
        if not heads:
            heads = head_conv_names(out / "model.onnx")
        built.append({**v, "dir": out, "manifest": man, "rebuilt": rebuilt})
    float_onnx = built[0]["dir"] / "model.onnx"
    specs = [str(float_onnx)] + [str(b["dir"]) for b in built]
    log(f"evaluating {len(specs)} models at {imgsz} ...")
    rows = evaluate(specs, a.images, a.annotations, imgsz, max_images=a.max_images, log=log)
    out = []
    for r, b in zip(rows, [None] + built):
        man = b["manifest"] if b else {}
        out.append({"imgsz": imgsz, "label": b["label"] if b else "float (ONNX Runtime)",
                    "calib": (f"{man['settings']['calib_mode']}, {man['settings']['num_calib']} img" if b else "-"),
                    "AP": r["AP"], "AP50": r["AP50"], "ratio": r["ratio"], "ms": r["ms_per_image"],
                    "images": r["images"], "espdl_mb": man.get("espdl_bytes", 0) / 1e6 if b else None,
                    "quantize_s": man.get("quantize_seconds") if b else None,
                    "int16_layers": len(man.get("settings", {}).get("int16_layers", [])) if b else 0})
    return out


def table(rows: list[dict]) -> str:
    lines = ["| imgsz | model | calibration | OKS AP | AP50 | AP / float | .espdl MB | host ms/image | quantize s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mb = "-" if r["espdl_mb"] is None else f"{r['espdl_mb']:.2f}"
        qs = "-" if r["quantize_s"] is None else f"{r['quantize_s']:.0f}"
        lines.append(f"| {r['imgsz']} | {r['label']} | {r['calib']} | {r['AP']:.3f} | {r['AP50']:.3f} | "
                     f"{r['ratio']:.3f} | {mb} | {r['ms']:.0f} | {qs} |")
    return "\n".join(lines)


def header(a) -> str:
    commit = git_commit()
    from importlib.metadata import version

    import torch

    return (f"Date {time.strftime('%Y-%m-%d %H:%M %Z')}, commit {commit}, {platform.machine()} "
            f"{os.cpu_count()} cores (torch threads {torch.get_num_threads()}), Python {platform.python_version()}, "
            f"esp-ppq {version('esp-ppq')}, "
            f"target {a.target}, weights {Path(a.weights).name}, val set {Path(a.annotations).name}.")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[320, 640])
    ap.add_argument("--target", default="esp32p4", choices=["esp32p4", "esp32s3"])
    ap.add_argument("--num-calib", type=int, default=256, help="calibration images per build (default 256)")
    ap.add_argument("--compare-calib-modes", action="store_true",
                    help="add 8-bit rows calibrated on letterboxed images (the default squashes them to a square)")
    ap.add_argument("--int16-heads", action="store_true",
                    help="add a mixed-precision row: the 9 final head convolutions in int16, the rest int8")
    ap.add_argument("--no-int16", action="store_true", help="leave out the 16-bit row (saves one build per size)")
    ap.add_argument("--work", default="/tmp/yolo11_pose_bench", help="build cache folder (reused when up to date)")
    ap.add_argument("--weights", default=str(SHARED / "models" / "yolo11n-pose.pt"))
    ap.add_argument("--calib", default=str(DATA / "calibration.txt"))
    ap.add_argument("--annotations", default=str(DATA / "annotations" / "person_keypoints_val.json"))
    ap.add_argument("--images", default=str(DATA / "images"))
    ap.add_argument("--max-images", type=int, default=None, help="score only the first N val images (smoke runs)")
    ap.add_argument("--out", default=None, help="also write the table as Markdown to this file")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: torch's choice); use 1 on a busy machine, where OpenMP "
                         "threads spin-waiting for a core make ESP-PPQ's executor several times slower")
    a = ap.parse_args()
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    try:
        if not Path(a.weights).is_file():
            raise UserError(f"weights {a.weights} not found; pass --weights or set YOLO11_POSE_SHARED")
        rows = []
        for s in a.sizes:
            rows += bench_size(a, s)
            log(table(rows))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = f"{header(a)}\n\n{table(rows)}\n"
    print(text)
    if a.out:
        with atomic_path(a.out) as tmp:
            Path(tmp).write_text(text)
        log(f"wrote {a.out}")
    json_rows = [{k: v for k, v in r.items()} for r in rows]
    log(json.dumps(json_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
