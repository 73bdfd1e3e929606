#!/usr/bin/env python3
"""Instruction counts of the C++ core on the host (valgrind callgrind), printed as a table. Not a test.

  python benchmarks/bench_cpp_callgrind.py [--weights ../shared/models/yolo11n-pose.pt]

preprocess: ultralytics' bus.jpg, 810x1080 RGB888 -> 640x640 int8 (letterbox, nearest resize, table quantization;
            includes building the index maps, which a camera loop does once).
postprocess: the official yolo11n-pose's 9 head outputs for bus.jpg at 640, each quantized to int8 at its own
            exponent, default thresholds (conf 0.25, NMS 0.7, max_det 300).
Counts are x86-64 instructions of an -O2 build (no sanitizers); they track algorithmic cost, not chip cycles.
"""
from __future__ import annotations

import argparse
import math
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

from yolo11_pose import cpp
from yolo11_pose.decode import OUTPUT_NAMES
from yolo11_pose.preprocess import load_rgb, quantize


def callgrind(exe: Path, stdin: bytes, func: str) -> int:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "cg.out"
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--collect-atstart=no",
               f"--toggle-collect={func}", str(exe)]
        r = subprocess.run(cmd, input=stdin, capture_output=True, check=False)
        if r.returncode:
            raise SystemExit(f"valgrind failed:\n{r.stderr.decode(errors='replace')[-2000:]}")
        m = re.search(rb"^(?:summary|totals):\s*(\d+)", out.read_bytes(), re.MULTILINE)
        return int(m.group(1)) if m else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=str(REPO.parent / "shared" / "models" / "yolo11n-pose.pt"))
    a = ap.parse_args()
    if not shutil.which("valgrind"):
        print("valgrind not found; apt-get install valgrind", file=sys.stderr)
        return 2
    import ultralytics

    bus = Path(ultralytics.__file__).parent / "assets" / "bus.jpg"
    exe = cpp.build("release") / "yolo11_pose_host"
    rgb = load_rgb(bus)
    h, w = rgb.shape[:2]
    pre_req = (f"pre w={w} h={h} fmt=rgb888 dst=640x640 bits=8 exp=-7 round=half_even bytes={rgb.nbytes}\n"
               ).encode() + rgb.tobytes()

    rows = [("preprocess 810x1080 RGB888 -> 640x640 int8", callgrind(exe, pre_req, "yolo11_pose::Preprocessor::run*"))]

    if Path(a.weights).is_file():
        from yolo11_pose.twin import TorchModel

        outs, lb = TorchModel(a.weights, 640).raw(rgb)
        specs, payload = [], bytearray()
        for i, n in enumerate(OUTPUT_NAMES):
            x = outs[n]
            e = math.ceil(math.log2(float(np.abs(x).max()) / 127))
            q = quantize(x, e, 8, "half_even")
            if len(payload) % 2:
                payload += b"\0"
            payload += q.tobytes()
            specs.append(f"t{i}=int8,{e},{q.shape[1]},{q.shape[2]},{q.shape[3]}")
        x0, y0, x1, y1 = lb.bounds
        lbs = ",".join(map(str, [lb.src_w, lb.src_h, lb.left, lb.top, lb.right, lb.bottom, repr(lb.inv_scale_x),
                                 repr(lb.inv_scale_y), x0, y0, x1, y1]))
        post_req = (f"post input=640x640 conf=0.25 iou=0.7 kpt_thr=0.5 max_det=300 lb={lbs} {' '.join(specs)} "
                    f"bytes={len(payload)}\n").encode() + bytes(payload)
        r = subprocess.run([str(exe)], input=post_req, capture_output=True, check=False)
        found = r.stdout.count(b'"cls"')
        rows.append((f"postprocess bus.jpg @640, int8 ({found} poses)",
                     callgrind(exe, post_req, "yolo11_pose::Postprocessor::run*")))
    else:
        print(f"(postprocess skipped: {a.weights} not found)", file=sys.stderr)

    print(f"{'operation':<48} {'instructions':>14}")
    print("-" * 63)
    for name, n in rows:
        print(f"{name:<48} {n:>14,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
