"""`yolo11-pose` command line: export, quantize, build, inspect, predict, eval."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from . import __version__
from .util import UserError

DEFAULT_CALIB_HELP = "images for calibration: a folder, a list file (one name per line) or a glob"


def _add_quant_args(p: argparse.ArgumentParser) -> None:
    from .quantize import CALIB_MODES, DEFAULT_CALIB_MODE, DEFAULT_SEED

    p.add_argument("--target", required=True, help="esp32p4 or esp32s3")
    p.add_argument("--bits", type=int, default=8, help="8 (default) or 16")
    p.add_argument("--calib", required=True, help=DEFAULT_CALIB_HELP)
    p.add_argument("--num-calib", type=int, default=64, help="number of calibration images (default 64)")
    p.add_argument("--calib-mode", default=DEFAULT_CALIB_MODE, choices=CALIB_MODES,
                   help=f"calibration preprocessing (default {DEFAULT_CALIB_MODE}; letterbox = device-exact)")
    p.add_argument("--int16-layers", default=None,
                   help="mixed precision: ONNX node names to run in int16 (comma-separated, or a file)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the calibration image selection")
    p.add_argument("--error-report", action="store_true",
                   help="also write graph-wise and layer-wise noise-to-signal tables and a chart (slow)")
    p.add_argument("--export-test-values", action="store_true",
                   help="embed a test input and its expected outputs for dl::Model::test() on the device")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--verbose", action="store_true", help="show ESP-PPQ's own log")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="yolo11-pose", description=__doc__)
    ap.add_argument("--version", action="version", version=f"yolo11-pose {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("export", help="pose checkpoint/YAML -> ONNX with 9 raw head outputs")
    p.add_argument("--weights", required=True, help="Ultralytics pose .pt (or architecture .yaml)")
    p.add_argument("--imgsz", type=int, default=640, help="square input size, multiple of 32 in 96..1280")
    p.add_argument("--out", required=True, help="output folder (model.onnx)")

    p = sub.add_parser("quantize", help="ONNX -> .espdl with ESP-PPQ")
    p.add_argument("--onnx", required=True, help="model.onnx from `yolo11-pose export`")
    _add_quant_args(p)

    p = sub.add_parser("build", help="export + quantize; does nothing when inputs and settings are unchanged")
    p.add_argument("--weights", required=True, help="Ultralytics pose .pt (or architecture .yaml)")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--force", action="store_true", help="rebuild even when up to date")
    _add_quant_args(p)

    p = sub.add_parser("inspect", help="describe an .espdl file")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("predict", help="poses for images: float (.pt/.onnx) or what the device outputs (build folder)")
    p.add_argument("--model", required=True, help=".pt, .onnx, or a build folder (host twin of the device)")
    p.add_argument("--image", required=True, nargs="+")
    p.add_argument("--imgsz", type=int, default=None, help="input size for .pt (default: the build's or 640)")
    p.add_argument("--conf", type=float, default=0.25)
    p.add_argument("--iou", type=float, default=0.7)
    p.add_argument("--kpt-thr", type=float, default=0.5)
    p.add_argument("--save-dir", default=None, help="write skeleton overlays (PNG) here")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")

    p = sub.add_parser("eval", help="COCO keypoint AP of float and quantized models side by side")
    p.add_argument("--model", required=True, nargs="+", help=".pt, .onnx or build folders")
    p.add_argument("--annotations", default=None, help="COCO person_keypoints json")
    p.add_argument("--images", required=True, help="image folder")
    p.add_argument("--imgsz", type=int, default=None)
    p.add_argument("--against-float", default=None, metavar="FLOAT_MODEL",
                   help="score against this float model's own predictions (no labels needed)")
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--report", default=None, help="write eval.json, eval.md and eval.png here")
    return ap


def _cmd_export(a) -> int:
    from .export import export_onnx

    info = export_onnx(a.weights, a.imgsz, a.out)
    print(f"wrote {info['onnx']} (kpt_shape {tuple(info['kpt_shape'])}, {info['nc']} class(es), "
          f"outputs {', '.join(info['output_names'])})")
    return 0


def _quant_kwargs(a) -> dict:
    from .quantize import parse_layer_list

    return dict(target=a.target, bits=a.bits, calib=a.calib, num_calib=a.num_calib, calib_mode=a.calib_mode,
                int16_layers=parse_layer_list(a.int16_layers), seed=a.seed, error_report=a.error_report,
                export_test_values=a.export_test_values)


def _summary(out, man: dict) -> str:
    outs = ", ".join(f"{o['name']} {o['dtype']} 2^{o['exponent']}" for o in man["outputs"])
    return (f"wrote {os.path.join(out, 'model.espdl')} ({man['espdl_bytes'] / 1e6:.2f} MB, {man['settings']['target']} "
            f"{man['settings']['bits']}-bit, input {man['input']['dtype']} 2^{man['input']['exponent']}; {outs})")


def _cmd_quantize(a) -> int:
    from .quantize import quantize

    man = quantize(a.onnx, out_dir=a.out, verbose=a.verbose, **_quant_kwargs(a))
    print(_summary(a.out, man))
    return 0


def _cmd_build(a) -> int:
    from .build import build

    kw = _quant_kwargs(a)
    t = time.time()
    man, rebuilt = build(a.weights, a.imgsz, out_dir=a.out, force=a.force, **kw)
    if rebuilt:
        print(_summary(a.out, man) + f" in {time.time() - t:.0f} s")
    return 0


def _cmd_inspect(a) -> int:
    from .espdl import inspect_command

    return inspect_command(a.file, a.json)


def _cmd_predict(a) -> int:
    from .twin import predict_command

    return predict_command(a)


def _cmd_eval(a) -> int:
    from .evaluate import eval_command

    return eval_command(a)


def main(argv=None) -> int:
    a = parser().parse_args(argv)
    try:
        return {"export": _cmd_export, "quantize": _cmd_quantize, "build": _cmd_build, "inspect": _cmd_inspect,
                "predict": _cmd_predict, "eval": _cmd_eval}[a.cmd](a)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; outputs were left as they were before this run", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
