#!/usr/bin/env python3
"""The shipped models next to the float model and Espressif's published files, one run. Not a test.

  python benchmarks/bench_shipped.py [--models DIR] [--out benchmarks/results/shipped.md] [--max-images N]

Dev set: the 92 COCO val2017 images of coco-pose-mini (139 people; about +-0.03 AP of noise: compare side by side),
the device's letterbox, every `.espdl` computed as ESP-DL 3.3.9 computes it (the executor, checked node for node
against ESP-DL's own kernels), the C++ postprocessor at conf 0.001 / 100 detections, pycocotools OKS AP. Per file:
size, share of MACs in int16, and which ESP-DL releases its arithmetic is verified for (the coverage gate and
`inspect`'s per-release section). "ratio" is AP / float AP at the same input size.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from _common import DATA, SHARED, emit_table, git_commit  # noqa: E402

sys.path.insert(0, str(REPO / "tools"))
REF = SHARED / "models" / "espdl-reference"


def int16_mac_share(path: Path) -> float:
    """MACs of int16 Conv/MatMul nodes over all, from the file alone."""
    from yolo11_pose.espdl.executor import load_graph

    g = load_graph(path)
    tot = i16 = 0
    for nd in g.nodes:
        if nd.op not in ("Conv", "MatMul"):
            continue
        out = g.info.get(nd.outputs[0], ([], None, None))[0] or []
        n_out = 1
        for d in out:
            n_out *= int(d)
        if nd.op == "Conv" and nd.inputs[1] in g.consts:
            w = g.consts[nd.inputs[1]].value.shape  # HWCN or HWNC: every dim but the output channels
            k = int(w[0]) * int(w[1]) * (1 if int(nd.attrs.get("group", 1)) > 1 else int(w[2]))
        else:
            a = g.info.get(nd.inputs[0], ([0], None, None))[0] or [0]
            k = int(a[-1])
        macs = n_out * k
        tot += macs
        if nd.attrs.get("quant_type") == "S16":
            i16 += macs
    return i16 / tot if tot else 0.0


def verified_for(path: Path, target: str) -> str:
    from yolo11_pose.espdl import coverage
    from yolo11_pose.espdl.compat import arithmetic
    from yolo11_pose.espdl.reader import read_espdl
    from yolo11_pose.espdl.executor import load_graph

    missing = coverage.unverified(load_graph(path), target)
    a = arithmetic(read_espdl(path), missing, target)
    now = "3.3.9 verified" if not missing else f"3.3.9: {len(missing)} op kinds unverified"
    later = "later 3.x: unknown" if a["unknown_later"] else "later 3.x: same constructs, not verified"
    return f"{now}; {later}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=str(REPO / "models"), help="folder with esp32p4/ and esp32s3/ models")
    ap.add_argument("--out", default=None, help="also write the Markdown here")
    ap.add_argument("--max-images", type=int, default=None)
    a = ap.parse_args()
    from yolo11_pose.evaluation.evaluate import evaluate

    models = Path(a.models)
    ann = str(DATA / "annotations" / "person_keypoints_val.json")
    t0 = time.time()
    lines = [f"# Shipped models on the dev set, one run ({time.strftime('%Y-%m-%d')}, commit {git_commit()})", "",
             __doc__.split("\n\n", 2)[1].replace("\n", " "), "",
             "| model | chip | input | AP | AP50 | ratio | file MB | int16 MACs | ESP-DL arithmetic |",
             "|---|---|---|---|---|---|---|---|---|"]
    for size, files in ((640, [(models / "esp32p4" / "yolo11n-pose-640-int8.espdl", "esp32p4", "ours"),
                               (models / "esp32s3" / "yolo11n-pose-640-int8.espdl", "esp32s3", "ours")]
                         + [(REF / c / f"coco_pose_yolo11n_pose_s8_{v}.espdl", f"esp32{c}", f"Espressif {v}")
                            for c in ("p4", "s3") for v in ("v1", "v2")]),
                        (416, [(models / "esp32p4" / "yolo11n-pose-416-int8.espdl", "esp32p4", "ours"),
                               (models / "esp32s3" / "yolo11n-pose-416-int8.espdl", "esp32s3", "ours")])):
        specs = [str(SHARED / "models" / "yolo11n-pose.pt")] + [f"{p}@{t}" for p, t, _ in files]
        rows = evaluate(specs, str(DATA / "images"), ann, imgsz=size, max_images=a.max_images, log=lambda *_: None)
        fl = rows[0]
        lines.append(f"| float YOLO11n-pose | - | {size} | {fl['AP']:.3f} | {fl['AP50']:.3f} | 1.000 | - | - | - |")
        for (p, t, who), r in zip(files, rows[1:]):
            lines.append(f"| {who} `{p.name}` | {t} | {size} | {r['AP']:.3f} | {r['AP50']:.3f} | {r['ratio']:.3f} | "
                         f"{p.stat().st_size / 1e6:.2f} | {int16_mac_share(p):.1%} | {verified_for(p, t)} |")
    lines += ["", f"{time.time() - t0:.0f} s on a 2-core x86-64 machine."]
    emit_table(lines, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
