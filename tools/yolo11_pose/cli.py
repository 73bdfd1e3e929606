"""`yolo11-pose` command line: export, quantize, build, qat, inspect, predict, eval."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from yolo11_pose import __version__, cfg
from yolo11_pose.util import UserError

IMGSZ_HELP = cfg.IMGSZ_HELP
# The device's defaults (cfg/default.yaml), so that the twin shows what YOLO11Pose::run() returns.
CONF_HELP = f"score threshold on the person score, 0 < conf < 1 (default {cfg.CONF:g}, as on the device)"
IOU_HELP = (f"NMS IoU threshold, 0..1: of two boxes overlapping more, the lower-scoring one is dropped "
            f"(default {cfg.IOU:g})")
KPT_THR_HELP = (f"keypoint visibility threshold on its confidence, 0..1 (default {cfg.KPT_THR:g}); hidden keypoints "
                "are still reported")
MAX_DET_HELP = f"at most this many people per image (default {cfg.MAX_DET}, the device's)"


class _Parser(argparse.ArgumentParser):
    """Usage mistakes as one line `error: ...` with exit code 2 (main() prints it), like every other bad input."""

    def error(self, message):
        raise UserError(f"{message}; see `{self.prog} --help`")


def _add_settings(p: argparse.ArgumentParser, command: str) -> None:
    """The build settings `command` takes (cfg.SETTINGS: flag, default, help, choices), in their order there."""
    for s in cfg.SETTINGS:
        if command not in s.commands:
            continue
        kw = dict(dest=s.name, help=s.help_for(command))
        if s.kind is bool:
            kw["action"] = "store_true"
        else:
            kw["default"] = s.default_for(command)
            if s.kind in (int, float):
                kw["type"] = s.kind
            if s.choices:
                kw["choices"] = s.choices
            if s.required:
                kw["required"] = True
            if s.metavar or not s.choices:
                kw["metavar"] = s.metavar or s.option[2:].replace("-", "_").upper()
        p.add_argument(s.option, **kw)


def _settings(a) -> cfg.Settings:
    """The command's build settings, checked once, before any slow work (layer names are checked against the graph
    right after export). Settings the command does not take are unused (None) where they can be, else defaults."""
    values = {s.name: getattr(a, s.name) if a.cmd in s.commands else None if s.nullable else s.default
              for s in cfg.SETTINGS}
    s = cfg.make_settings(source="cli", **values)
    if a.cmd in cfg.QUANT:
        from yolo11_pose.make.recipe import check_device

        check_device(s.device)  # a CUDA device torch sees
    return s


def _add_quant_args(p: argparse.ArgumentParser, command: str) -> None:
    _add_settings(p, command)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--verbose", action="store_true", help="show ESP-PPQ's own log")
    _add_unverified_arg(p)


def _add_unverified_arg(p: argparse.ArgumentParser) -> None:
    from yolo11_pose.espdl.coverage import OPT_IN

    p.add_argument(OPT_IN, action="store_true",
                   help="run or write a file that computes something no output of ESP-DL's own kernels covers "
                        "(e.g. --bits 16's int16 Add/Concat/Resize/Softmax): the host's figures for it are then "
                        "unproven")


def _add_twin_args(p: argparse.ArgumentParser) -> None:
    from yolo11_pose.device.twin import ENGINES

    p.add_argument("--target", default=None, choices=sorted(cfg.TARGET_ROUNDING),
                   help="chip of an .espdl that does not record it (Espressif's files): decides the rounding rule; "
                        "refused when it contradicts the chip a file records")
    p.add_argument("--engine", default=ENGINES[0], choices=ENGINES,
                   help="espdl (default): run the file with ESP-DL's integer semantics; ppq: ESP-PPQ's simulation "
                        "of a build folder's graph, as a cross-check")
    p.add_argument("--device", default="cpu",
                   help="cpu (default) or cuda[:N]: .pt models and the espdl engine's convolutions (exact float64 "
                        "GEMMs) run there; .onnx and --engine ppq stay on the CPU")
    _add_unverified_arg(p)


def parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="yolo11-pose", description=__doc__)
    ap.add_argument("--version", action="version", version=f"yolo11-pose {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="{export,quantize,build,qat,inspect,predict,eval}")
    add = sub.add_parser

    def add_parser(name, **kw):  # every subcommand's --help starts with what it does
        return add(name, description=kw.get("help"), **kw)

    sub.add_parser = add_parser

    p = sub.add_parser("export", help="pose checkpoint/YAML -> ONNX with 9 raw head outputs")
    _add_settings(p, "export")
    p.add_argument("--out", required=True, help="output folder (model.onnx)")

    p = sub.add_parser("quantize", help="ONNX (from `export`) -> .espdl with ESP-PPQ")
    p.add_argument("--onnx", required=True, help="model.onnx from `yolo11-pose export`")
    _add_quant_args(p, "quantize")

    p = sub.add_parser("build", help="export + quantize; does nothing when inputs and settings are unchanged")
    _add_quant_args(p, "build")

    p = sub.add_parser("qat", help="build, then fine-tune the quantized network against the float model's own "
                                   "outputs on the calibration images (no labels)")
    _add_quant_args(p, "qat")

    p = sub.add_parser("inspect", help="describe an .espdl file: inputs, outputs, layers, head, integrity, ESP-DL "
                                       "releases that can load it")
    p.add_argument("file", help="the .espdl file (a build folder's model.espdl, a file in models/, Espressif's)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--memory", action="store_true",
                   help="what ESP-DL will allocate for it: activations (its memory planner), parameters, test values, "
                        "and where each lives (PSRAM, internal RAM, flash)")
    p.add_argument("--target", choices=["esp32p4", "esp32s3"], help="with --memory: the chip (default: the file's)")
    p.add_argument("--location", choices=["flash_rodata", "flash_partition", "sdcard"], default="flash_rodata",
                   help="with --memory: where the model is loaded from (menuconfig's Model location)")

    p = sub.add_parser("predict", help="poses for images: float (.pt/.onnx) or what the device outputs (.espdl)")
    p.add_argument("--model", required=True,
                   help=".pt, .onnx, a build folder or any .espdl file (run as ESP-DL runs it: the host twin)")
    _add_twin_args(p)
    p.add_argument("--save-outputs", default=None, metavar="DIR",
                   help="also write each image's raw int input and output tensors (.npz, with exponents) here, to "
                        "diff against a device dump")
    p.add_argument("--image", required=True, nargs="+", help="one or more pictures (JPEG, PNG, BMP)")
    p.add_argument("--imgsz", type=int, default=None,
                   help=f"{IMGSZ_HELP}; only for a .pt (default {cfg.IMGSZ}): .onnx files and builds have their own")
    p.add_argument("--conf", type=float, default=cfg.CONF, help=CONF_HELP)
    p.add_argument("--iou", type=float, default=cfg.IOU, help=IOU_HELP)
    p.add_argument("--kpt-thr", type=float, default=cfg.KPT_THR, help=KPT_THR_HELP)
    p.add_argument("--max-det", type=int, default=cfg.MAX_DET, help=MAX_DET_HELP)
    p.add_argument("--save-dir", default=None, help="write skeleton overlays (PNG) here")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")

    p = sub.add_parser("eval", help="COCO keypoint AP of float and quantized models side by side")
    p.add_argument("--model", required=True, nargs="+",
                   help=".pt, .onnx, build folders or .espdl files; FILE.espdl@esp32s3 names one file's chip")
    _add_twin_args(p)
    p.add_argument("--annotations", default=None, help="COCO person_keypoints json")
    p.add_argument("--images", required=True, help="image folder")
    p.add_argument("--imgsz", type=int, default=None,
                   help=f"{IMGSZ_HELP} (default: the builds' size, else {cfg.IMGSZ}); all models run at one size")
    p.add_argument("--against-float", default=None, metavar="FLOAT_MODEL",
                   help="score against this float model's own predictions (no labels needed)")
    p.add_argument("--max-images", type=int, default=None, help="use only the first N images (default: all)")
    p.add_argument("--report", default=None, help="write eval.json, eval.md and eval.png here")
    return ap


def _check_weights(w: str) -> None:
    """--weights, before anything slow: a folder, a missing file or a damaged checkpoint in one line."""
    p = Path(w)
    if p.is_dir():
        raise UserError(f"--weights {w} is a folder; give a pose .pt checkpoint (or a model .yaml) in it")
    if p.suffix not in (".pt", ".yaml", ".yml"):
        raise UserError(f"weights {w}: expected a .pt checkpoint or a model .yaml")
    if not p.exists():
        if p.parent != Path(".") or not p.name.lower().startswith("yolo"):
            raise UserError(f"weights {w} not found; give the path of a pose .pt checkpoint (or an official name "
                            "such as yolo11n-pose.pt, downloaded by Ultralytics)")
        return  # a bare official name: Ultralytics downloads it (or knows the architecture YAML)
    if p.suffix == ".pt":
        import zipfile

        try:
            with open(p, "rb") as f:
                first = f.read(1)
            ok = zipfile.is_zipfile(p) or first == b"\x80"  # torch.save's zip archive, or a legacy pickle
        except OSError as e:
            raise UserError(f"cannot read weights {w} ({e.strerror or e}); check its permissions") from None
        if not ok:
            size = p.stat().st_size
            what = "an empty file" if not size else f"{size:,} bytes, not a zip archive: truncated or damaged"
            raise UserError(f"cannot load weights {w}: not a PyTorch checkpoint ({what}); re-download or re-copy it")


def _check_calib_images(s: cfg.Settings) -> None:
    """Every calibration image this build will use decodes (seconds), before the export and quantization (minutes)."""
    from yolo11_pose.device.preprocess import load_rgb
    from yolo11_pose.make.quantize import resolve_images, select_images

    for f in select_images(resolve_images(s.calib), s.num_calib, s.seed):
        try:
            load_rgb(f)
        except ValueError as e:
            raise UserError(f"calibration image {e}") from None


def _cmd_export(a) -> int:
    from yolo11_pose.make.export import export_onnx

    s = _settings(a)
    _check_weights(s.weights)
    info = export_onnx(s.weights, s.imgsz, a.out, branch=s.branch)
    print(f"wrote {info['onnx']} (kpt_shape {tuple(info['kpt_shape'])}, {info['nc']} class(es), "
          f"outputs {', '.join(info['output_names'])}; head {info['head_kind']})")
    return 0


def _summary(out, man: dict) -> str:
    outs = ", ".join(f"{o['name']} {o['dtype']} 2^{o['exponent']}" for o in man["outputs"])
    return (f"wrote {os.path.join(out, 'model.espdl')} ({man['espdl_bytes'] / 1e6:.2f} MB, {man['settings']['target']} "
            f"{man['settings']['bits']}-bit, input {man['input']['dtype']} 2^{man['input']['exponent']}; {outs})")


def _cmd_quantize(a) -> int:
    onnx = Path(a.onnx)
    if onnx.is_dir():
        raise UserError(f"--onnx {a.onnx} is a folder; give the model.onnx in it (from `yolo11-pose export`)")
    if not onnx.is_file():
        raise UserError(f"ONNX file {a.onnx} not found; run `yolo11-pose export` first")
    from yolo11_pose.make.export import onnx_meta

    onnx_meta(onnx)  # refuses empty files, checkpoints and Ultralytics' own ONNX before ESP-PPQ loads (seconds)
    s = _settings(a)
    if s.int16_layers:  # named against the graph (quantize() says the same, after loading ESP-PPQ)
        from yolo11_pose.make.quantize import onnx_node_names, onnx_weighted_layers

        unknown = [n for n in s.int16_layers if n not in set(onnx_node_names(onnx))]
        if unknown:
            near = sorted(onnx_weighted_layers(onnx), key=lambda k: -len(os.path.commonprefix([k, unknown[0]])))[:3]
            raise UserError(f"--int16-layers names unknown layer {unknown[0]!r}; use layer names as "
                            f"`yolo11-pose inspect` lists them, such as {', '.join(near)}")
    _check_calib_images(s)
    from yolo11_pose.make.quantize import quantize_settings

    man = quantize_settings(a.onnx, s, a.out, verbose=a.verbose)
    print(_summary(a.out, man))
    return 0


def _cmd_build(a) -> int:
    s = _settings(a)
    _check_weights(s.weights)
    _check_calib_images(s)
    from yolo11_pose.make.build import build_settings

    t = time.time()
    man, rebuilt = build_settings(s, a.out)
    if rebuilt:
        print(_summary(a.out, man) + f" in {time.time() - t:.0f} s")
    return 0


def _cmd_inspect(a) -> int:
    from yolo11_pose.espdl.inspect_report import inspect_command

    if a.memory:
        from yolo11_pose.espdl.memory import memory_command

        return memory_command(a.file, a.target, a.location, a.json)
    return inspect_command(a.file, a.json)


def _check_model(spec: str, flag: str) -> None:
    """A model path, before anything loads (tens of seconds): missing files and wrong kinds in one line."""
    p = Path(spec)
    if p.is_dir():
        if not (p / "model.espdl").is_file() and not (p / "manifest.json").is_file():
            raise UserError(f"{flag} {spec} is a folder without model.espdl; give a build folder, or a .pt, .onnx or "
                            ".espdl file")
        return
    if p.suffix not in (".pt", ".onnx", ".espdl", ".yaml", ".yml"):
        raise UserError(f"model {spec}: give a .pt checkpoint, an .onnx file, an .espdl file or a build folder")
    if not p.exists() and not (p.suffix in (".pt", ".yaml", ".yml") and p.parent == Path(".")
                               and p.name.lower().startswith("yolo")):  # official names: Ultralytics has them
        raise UserError(f"model {spec} not found; check the {flag} path")
    if p.suffix == ".onnx":
        from yolo11_pose.make.export import onnx_meta

        onnx_meta(p)  # empty files, checkpoints, Ultralytics' own ONNX: refused before a session is made
    elif p.suffix == ".pt":
        _check_weights(spec)  # a truncated or empty checkpoint, before torch loads


def _cmd_predict(a) -> int:
    from yolo11_pose.make.recipe import check_device

    # Everything the run needs is checked before the model loads (tens of seconds) and before any PNG is written.
    cfg.check_thresholds(a.conf, a.iou, a.kpt_thr, a.max_det)
    check_device(a.device)
    folders = [i for i in a.image if Path(i).is_dir()]
    if folders:
        raise UserError(f"--image {folders[0]} is a folder; give image files (a shell glob such as "
                        f"{Path(folders[0]) / '*.jpg'} expands to them)")
    missing = [i for i in a.image if not Path(i).is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise UserError(f"image {missing[0]} not found{more}; check the --image paths")
    from yolo11_pose.device.preprocess import image_size

    for img in a.image:  # the header only: cheap, and catches non-images and oversized ones before any output
        try:
            image_size(img)
        except ValueError as e:
            raise UserError(str(e)) from None
    if a.save_dir and Path(a.save_dir).exists() and not Path(a.save_dir).is_dir():
        raise UserError(f"--save-dir {a.save_dir} is a file; give a folder for the overlay PNGs")
    _check_model(a.model, "--model")
    if a.imgsz is not None:
        from yolo11_pose.make.export import check_imgsz

        check_imgsz(a.imgsz)
    from yolo11_pose.device.twin import predict_command

    return predict_command(a)


def _cmd_eval(a) -> int:
    from yolo11_pose.evaluation.evaluate import eval_command
    from yolo11_pose.make.recipe import check_device

    check_device(a.device)

    if a.report and Path(a.report).exists() and not Path(a.report).is_dir():
        raise UserError(f"--report {a.report} is a file; give a folder for eval.json, eval.md and eval.png")
    from yolo11_pose.evaluation.evaluate import check_eval_args, split_target

    check_eval_args(a.annotations, a.against_float, a.max_images)
    for m in a.model:
        _check_model(split_target(m, a.target)[0], "--model")
    if a.against_float:
        _check_model(a.against_float, "--against-float")
    if a.imgsz is not None:
        from yolo11_pose.make.export import check_imgsz

        check_imgsz(a.imgsz)
    if Path(a.images).is_file():
        raise UserError(f"--images {a.images} is a file; give the folder of the images")
    if a.annotations is not None and Path(a.annotations).is_dir():
        raise UserError(f"--annotations {a.annotations} is a folder; give the COCO person_keypoints json")
    return eval_command(a)


def _parse(argv) -> argparse.Namespace:
    ap = parser()
    a, extra = ap.parse_known_args(argv)
    if extra and getattr(a, "calib", None) and not extra[0].startswith("-") and Path(a.calib).is_file():
        # `--calib calib/*.jpg` unquoted: the shell passed every file, the first as --calib and the rest as extras.
        folder = Path(a.calib).parent
        glob = f"{folder}/*{Path(a.calib).suffix}"
        raise UserError(f"--calib got {len(extra) + 1} paths ({a.calib}, {extra[0]}, ...): the shell expanded an "
                        f"unquoted glob; quote it (--calib '{glob}') or give the folder (--calib {folder})")
    if extra:
        ap.error(f"unrecognized arguments: {' '.join(extra)}")
    return a


def _new_dirs(path) -> list:
    """The folders that creating `path` would add (it and its missing parents), deepest first."""
    out, p = [], Path(path).absolute()
    while not p.exists() and p != p.parent:
        out.append(p)
        p = p.parent
    return out


def main(argv=None) -> int:
    try:
        a = _parse(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if getattr(a, "allow_unverified_ops", False):
        from yolo11_pose.espdl.coverage import ENV

        os.environ[ENV] = "1"  # every executor and build of this run (coverage.allowed)
    # A failed export/quantize/build must not leave an empty --out behind (only folders this run created go).
    created = _new_dirs(a.out) if getattr(a, "out", None) else []
    try:
        cmd = {"export": _cmd_export, "quantize": _cmd_quantize, "build": _cmd_build, "qat": _cmd_build,
               "inspect": _cmd_inspect,
               "predict": _cmd_predict, "eval": _cmd_eval}[a.cmd]
        if not getattr(a, "out", None):
            return cmd(a)
        from yolo11_pose.util import out_lock

        with out_lock(a.out):  # one run per output folder
            return cmd(a)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; outputs were left as they were before this run", file=sys.stderr)
        return 130
    finally:
        for d in created:
            try:
                d.rmdir()  # only when empty
            except OSError:
                break


if __name__ == "__main__":
    sys.exit(main())
