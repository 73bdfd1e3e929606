"""ONNX -> ESP-DL `.espdl` with ESP-PPQ (8-bit, 16-bit, mixed precision), plus a manifest of what went in.

Besides the `.espdl`, the quantized graph is saved in ESP-PPQ's native format (`model.native`), so the host twin can
simulate exactly this build later without re-calibrating.
"""
from __future__ import annotations

import glob
import json
import logging
import math
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from yolo11_pose import __version__, cfg
from yolo11_pose.device import head as heads
from yolo11_pose.espdl import integrity
from yolo11_pose.device.decode import OUTPUT_NAMES
from yolo11_pose.device.preprocess import IMAGE_SUFFIXES, TARGET_ROUNDING, float_input, load_rgb
from yolo11_pose.make.ppq_env import (ESPPPQ_VERSION, _quiet, check_ppq_version, espdl_export_fixes,  # noqa: F401
                                     import_ppq)
from yolo11_pose.progress import mark
from yolo11_pose.util import UserError, ensure_writable_dir, sha256_file, write_json

CALIB_MODES = cfg.setting("calib_mode").choices  # ("square", "letterbox")
#: Measured on COCO val (official weights, esp32p4 8-bit, 640): squashed calibration keeps 0.86 of float AP,
#: letterboxed only 0.75 (../shared/REFERENCE.md; our own numbers in benchmarks/). So squash by default.
DEFAULT_CALIB_MODE = cfg.CALIB_MODE  # "square"
DEFAULT_SEED = cfg.setting("seed").default
BATCH = 8
MIN_CALIB = 8


# ----------------------------------------------------------------------------------------------- calibration images
def resolve_images(source: str | os.PathLike) -> list[Path]:
    """A folder, a list file (one path per line, relative to the list or its images/ folder) or a glob."""
    s = str(source)
    p = Path(s)
    if any(ch in s for ch in "*?["):
        files = [Path(f) for f in sorted(glob.glob(s, recursive=True)) if Path(f).is_file()]
        what = f"glob {s}"
    elif p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
        what = f"folder {s}"
    elif p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
        raise UserError(f"calibration source {s} is a single image; give a folder, a list file or a quoted glob "
                        f"such as '{p.parent}/*{p.suffix}'")
    elif p.is_file():
        files = []
        for line in p.read_text(errors="replace").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            cands = [Path(line)] if Path(line).is_absolute() else [p.parent / line, p.parent / "images" / line]
            hit = next((c for c in cands if c.is_file()), None)
            if hit is None:
                raise UserError(f"calibration list {s} names {line}, which does not exist; fix the list or the paths")
            files.append(hit)
        what = f"list {s}"
    else:
        raise UserError(f"calibration source {s} does not exist; give a folder of images, a list file or a glob")
    if not files:
        raise UserError(f"calibration {what} holds no files; give a folder, list or glob with JPEG/PNG images")
    bad = [f for f in files if f.suffix.lower() not in IMAGE_SUFFIXES]
    if bad:
        raise UserError(f"calibration {what} holds {len(bad)} non-image file(s), e.g. {bad[0].name}; keep only "
                        f"{'/'.join(IMAGE_SUFFIXES)} files there (or use a glob such as '{p}/*.jpg')")
    return files


def select_images(files: list[Path], num: int, seed: int = DEFAULT_SEED) -> list[Path]:
    if num < MIN_CALIB:
        raise UserError(f"--num-calib {num} is too few; use at least {MIN_CALIB} (ESP-PPQ needs 8 calibration steps, "
                        "64 or more images give stable ranges)")
    if len(files) < num:
        raise UserError(f"only {len(files)} calibration images found but {num} asked for; lower --num-calib or add "
                        "images")
    if len(files) == num:
        return list(files)
    return sorted(random.Random(seed).sample(list(files), num))


def calibration_batches(files: list[Path], imgsz: int, mode: str, progress: bool = True) -> list:
    import torch
    from tqdm import tqdm

    if mode not in CALIB_MODES:
        raise UserError(f"unknown calibration preprocessing {mode!r}; use one of {', '.join(CALIB_MODES)}")
    xs = []
    for f in tqdm(files, desc="calibration images", unit="img", disable=not progress, leave=False):
        try:
            rgb = load_rgb(f)
        except ValueError as e:
            raise UserError(str(e)) from None
        xs.append(float_input(rgb, imgsz, imgsz, mode=mode)[0])
    arr = np.concatenate(xs)
    # ESP-PPQ wants at least 8 calibration steps: shrink the batch for small image counts.
    batch = max(1, min(BATCH, len(arr) // 8))
    return [torch.from_numpy(arr[i:i + batch]) for i in range(0, len(arr), batch)]


# ----------------------------------------------------------------------------------------------- quantization
def onnx_node_names(onnx_path: str | Path) -> list[str]:
    import onnx

    return [n.name for n in onnx.load(str(onnx_path), load_external_data=False).graph.node]


#: Layers with weights: the ones worth int16, and the ones `yolo11-pose inspect` lists under their ONNX names
#: (ESP-PPQ fuses activations into new nodes such as `.../Conv/Swish`, which the ONNX does not have).
WEIGHTED_OPS = ("Conv", "Gemm", "MatMul", "ConvTranspose")


def onnx_op_types(onnx_path: str | Path) -> set[str]:
    import onnx

    return {n.op_type for n in onnx.load(str(onnx_path), load_external_data=False).graph.node}


def onnx_weighted_layers(onnx_path: str | Path) -> list[str]:
    import onnx

    return [n.name for n in onnx.load(str(onnx_path), load_external_data=False).graph.node
            if n.op_type in WEIGHTED_OPS]


def _platform(target: str, bits: int):
    from esp_ppq.api.espdl_interface import get_target_platform

    return get_target_platform(target, "w8a8" if bits == 8 else "w16a16")


def _exponent(scale) -> int:
    s = float(np.asarray(scale.detach().cpu() if hasattr(scale, "detach") else scale).reshape(-1)[0])
    return int(round(math.log2(s)))


def io_quant_info(graph, output_names=OUTPUT_NAMES) -> tuple[dict, list[dict]]:
    """Input and output facts (name, shape NHWC as the device sees it, dtype, exponent) from a quantized PPQ graph."""
    def info(var, cfg):
        shape = list(var.shape) if var.shape else []
        nhwc = [shape[0], *shape[2:], shape[1]] if len(shape) == 4 else shape
        bits = int(cfg.num_of_bits)
        return {"name": var.name, "shape": nhwc, "dtype": f"int{bits}", "exponent": _exponent(cfg.scale)}

    ins = []
    for name, var in graph.inputs.items():
        op = var.dest_ops[0]
        ins.append(info(var, op.config.input_quantization_config[op.inputs.index(var)]))
    outs = []
    for name, var in graph.outputs.items():
        op = var.source_op
        outs.append(info(var, op.config.output_quantization_config[op.outputs.index(var)]))
    order = {n: i for i, n in enumerate(output_names)}
    outs.sort(key=lambda o: order.get(o["name"], 99))
    return ins[0], outs


def quantize(onnx_path: str | Path, target: str, bits: int, calib: str, num_calib: int, out_dir: str | Path,
             progress: bool = True, verbose: bool = False, extra_manifest: dict | None = None,
             steps: dict | None = None, **settings) -> dict:
    """Quantize; write out_dir/model.espdl, model.native (PPQ graph), model.info/json (ESP-PPQ dumps), manifest.json.

    ``settings``: any other build setting of cfg.SETTINGS by name (calib_mode, int16_layers, seed, recipe, ...),
    checked once by cfg.make_settings; see quantize_settings."""
    s = cfg.make_settings(weights=None, target=target, bits=bits, calib=calib, num_calib=num_calib, **settings)
    return quantize_settings(onnx_path, s, out_dir, progress=progress, verbose=verbose,
                             extra_manifest=extra_manifest, steps=steps)


def quantize_settings(onnx_path: str | Path, s: cfg.Settings, out_dir: str | Path, progress: bool = True,
                      verbose: bool = False, extra_manifest: dict | None = None, steps: dict | None = None) -> dict:
    """`quantize` from a settings object (cfg.make_settings; its imgsz is the ONNX's). The recipe, int16 budget,
    device and fine-tuning settings: see recipe.py (the ESP-PPQ setting, the int16 layers and the fine-tuning come
    from there); `steps` switches single recipe steps on or off (benchmarks/bench_recipes.py)."""
    import torch

    check_ppq_version()
    import_ppq()
    from esp_ppq.api import espdl_quantize_onnx, export_ppq_graph
    from esp_ppq.core import TargetPlatform

    from yolo11_pose.make.export import onnx_meta

    t0 = time.time()
    for name in ("target", "calib"):
        if getattr(s, name) is None:
            raise UserError(f"{cfg.setting(name).option} must be given")
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise UserError(f"ONNX file {onnx_path} not found; run `yolo11-pose export` first")
    meta = onnx_meta(onnx_path)  # first: it refuses files that are not `yolo11-pose export` ONNX
    out_dir = ensure_writable_dir(out_dir)
    int16_layers = list(s.int16_layers)
    if int16_layers:
        known = set(onnx_node_names(onnx_path))
        unknown = [n for n in int16_layers if n not in known]
        if unknown:
            weighted = onnx_weighted_layers(onnx_path)
            near = sorted(weighted, key=lambda k: -len(os.path.commonprefix([k, unknown[0]])))[:3]
            raise UserError(f"--int16-layers names unknown layer {unknown[0]!r}; use layer names as "
                            f"`yolo11-pose inspect` lists them, such as {', '.join(near)}")
    if s.bits == 16:
        from yolo11_pose.espdl import coverage

        coverage.precheck_int16(onnx_op_types(onnx_path), s.target)
    imgsz = int(meta.get("imgsz") or 0)
    if not imgsz:
        import onnx

        dims = onnx.load(str(onnx_path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
        imgsz = int(dims[2].dim_value)
    s = s.replace(imgsz=imgsz)
    target, bits, device = s.target, s.bits, s.device
    files = select_images(resolve_images(s.calib), s.num_calib, s.seed)
    batches = calibration_batches(files, imgsz, s.calib_mode, progress)

    from yolo11_pose.make.recipe import grad_mode, plan_for

    plan = plan_for(s, onnx_path, batches, log=mark, steps=steps)
    setting = plan.setting

    work = Path(tempfile.mkdtemp(prefix=".quantize-", dir=out_dir))
    try:
        # ESP-PPQ rewrites its input ONNX in place (simplification): give it a copy.
        src = work / "input.onnx"
        shutil.copyfile(onnx_path, src)
        espdl_tmp = work / "model.espdl"
        logging.getLogger("esp_ppq").setLevel(logging.WARNING)
        from esp_ppq.api.espdl_interface import (_resolve_quant_type_and_bits, generate_test_value,
                                                 get_random_inputs, get_target_platform)
        import esp_ppq.lib as PFL

        threads = torch.get_num_threads()
        with espdl_export_fixes():
            # drawn first, as espdl_quantize_onnx does (the shape tracing and the test values use it)
            dummy = get_random_inputs([1, 3, imgsz, imgsz], torch.float32, device)
            with _quiet(verbose, "quantizing" if progress else None), grad_mode(setting):
                graph = espdl_quantize_onnx(
                    onnx_import_file=str(src), espdl_export_file=str(espdl_tmp), calib_dataloader=batches,
                    calib_steps=len(batches), input_shape=[1, 3, imgsz, imgsz], inputs=dummy, target=target,
                    num_of_bits=bits, collate_fn=lambda b: b.float().to(device), setting=setting, device=device,
                    error_report=False, skip_export=True, verbose=0)
            if plan.finetune:
                from yolo11_pose.make.finetune import distill
                from yolo11_pose.make.recipe import torch_threads

                mark(f"fine-tuning against the float model ({plan.finetune['epochs']:g} epoch(s), lr "
                     f"{plan.finetune['lr']:g})")
                with torch_threads(threads):  # training is the slow part: all the cores
                    plan.info["finetune"] = distill(graph, batches, meta["head"], device=device, log=mark,
                                                    **plan.finetune)
            with _quiet(verbose, "quantizing" if progress else None):  # one title: the export is its last phase
                values_for_test = generate_test_value(graph, device, dummy, None) if s.export_test_values else None
                platform = get_target_platform(target, _resolve_quant_type_and_bits(None, bits)[0])
                PFL.Exporter(platform=platform).export(
                    file_path=str(espdl_tmp), graph=graph, values_for_test=values_for_test, export_config=True,
                    int16_lut_step=-1,  # no int16 tables: ESP-DL 3.3.9 ignores them on Swish/Sigmoid (chipsim.py)
                    metadata_props={"producer": f"yolo11-pose {__version__}",
                                    "kpt_shape": str(meta.get("kpt_shape")), "imgsz": str(imgsz), "target": target,
                                    # the head contract (head.py): the device's postprocessor reads it at model load
                                    heads.METADATA_KEY: meta["head"].to_text(),
                                    **integrity.export_metadata()})  # filled in by integrity.seal() below
                mark("saving the quantized graph for the host twin (model.native)")
                export_ppq_graph(graph, TargetPlatform.NATIVE, graph_save_to=str(work / "model.native"))
        # Nothing is published (the work folder goes) when the declared ESP-DL range cannot read the file.
        from yolo11_pose.espdl.compat import check_publishable

        espdl_compat = check_publishable(espdl_tmp)
        from yolo11_pose.espdl import coverage
        from yolo11_pose.espdl.executor import load_graph

        # Nor when it computes something no ESP-DL output covers (coverage.py), unless the user opted in.
        espdl_compat["unverified_ops"] = sorted(coverage.check(load_graph(espdl_tmp), target, what="build"))
        s3_acc = s3_accumulators(espdl_tmp, files) if target == "esp32s3" else None
        psram = psram_check(espdl_tmp, target)
        test_values = None
        if s.export_test_values:
            # ESP-PPQ embeds its own simulation's outputs; dl::Model::test() on the chip must compare against what
            # ESP-DL computes (int8: exactly), so the expected outputs are recomputed with the executor.
            from yolo11_pose.espdl.executor import embed_espdl_test_outputs

            emb = embed_espdl_test_outputs(espdl_tmp, target)
            test_values = {"expected_by": "executor (ESP-DL semantics)", "rewritten_from_esp_ppq": emb["rewritten"],
                           "esp_ppq_differing": {k: v["differing"] for k, v in emb["before"]["outputs"].items()
                                                 if v["differing"]}}
        integrity.seal(espdl_tmp)  # last rewrite of the file: its content SHA-256 into its metadata
        inp, outs = io_quant_info(graph, meta["head"].output_names)
        report = None
        if s.error_report:
            from yolo11_pose.evaluation.report import error_report as run_error_report

            report = run_error_report(graph, batches, work, progress=progress)
        manifest = {
            "tool": f"yolo11-pose {__version__}",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "settings": manifest_settings(s, plan.info, plan.finetune),
            "recipe": plan.info,
            "inputs": {"onnx": str(onnx_path), "onnx_sha256": sha256_file(onnx_path), "calib_source": str(s.calib),
                       "calib_images": [f.name for f in files],
                       "calib_sha256": hash_files(files)},
            "kpt_shape": meta.get("kpt_shape"), "nc": meta.get("nc"), "head": meta["head"].to_text(),
            "input": inp, "outputs": outs,
            "rounding": TARGET_ROUNDING[target],
            "espdl_sha256": sha256_file(espdl_tmp), "espdl_bytes": espdl_tmp.stat().st_size,
            "native_sha256": sha256_file(work / "model.native"), "esp_dl": espdl_compat,
            "versions": _versions(),
            "quantize_seconds": round(time.time() - t0, 1),
        }
        manifest["psram"] = psram
        if s3_acc:
            manifest["s3_accumulators"] = s3_acc
        if report:
            manifest["error_report"] = report
        if test_values:
            manifest["test_values"] = test_values
        manifest.update(extra_manifest or {})
        # Publish: every artifact by rename, the manifest last (its presence marks a complete build).
        for name in ("model.espdl", "model.native", "model.info", "model.json"):
            if (work / name).exists():
                os.replace(work / name, out_dir / name)
        for f in work.glob("error_*"):
            os.replace(f, out_dir / f.name)
        write_json(out_dir / "manifest.json", manifest)
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def manifest_settings(s: cfg.Settings, plan_info: dict, finetune: dict | None) -> dict:
    """The manifest's "settings": every setting the files depend on (cfg.SETTINGS' ``key``), and what the recipe
    chose from them."""
    return {**s.key_values(), "calib_algorithm": plan_info["calibration"]["method"], "finetune": finetune}


#: Calibration images on which an ESP32-S3 build measures its accumulator bounds (accumulators.py).
S3_ACCUMULATOR_IMAGES = 8


def s3_accumulators(espdl_path: Path, files: list[Path]) -> dict:
    """ESP32-S3: the worst partial-sum bound per int8 Conv/MatMul against the 20-bit lane, on the first calibration
    images as the device feeds them; refuses what no input can make right, warns above half the lane."""
    from yolo11_pose.make import accumulators
    from yolo11_pose.espdl.executor import Executor
    from yolo11_pose.device.preprocess import device_input

    ex = Executor(espdl_path, "esp32s3", allow_unverified=True)  # the gate has spoken already
    inp = ex.graph.inputs[0]
    bits = 16 if inp.dtype == "int16" else 8
    xs = [device_input(load_rgb(f), inp.shape[2], inp.shape[1], ex._exp(inp.name), bits, ex.rounding)[0]
          for f in files[:S3_ACCUMULATOR_IMAGES]]
    from yolo11_pose.espdl import coverage

    rep = accumulators.report(ex, xs, allow=coverage.allowed())  # the same opt-in as the coverage gate
    if rep["over_warn"]:
        print(f"warning: on the ESP32-S3, {len(rep['over_warn'])} int8 layer(s) can reach more than "
             f"{accumulators.WARN_SHARE:g} of the 20-bit accumulator lane (worst {rep['worst_layer']}: "
             f"{rep['worst_share']:.2f}); the chip saturates where the executor does not", file=sys.stderr)
    return rep


def psram_check(espdl_path: Path, target: str) -> dict:
    """ESP-DL's PSRAM allocation for the file (memory.py: its planner, the parameter copy); warns when it takes more
    than MODEL_PSRAM_SHARE of Espressif's reference board (int16 activations can double a layer's memory)."""
    from yolo11_pose.espdl import memory

    p = memory.plan(espdl_path, target)
    board = memory.CHIPS[target].psram_reference
    out = {"bytes": p.psram_bytes, "activations": p.activation_bytes, "parameters": p.parameter_bytes,
           "reference_board": board, "share": round(p.psram_bytes / board, 4)}
    if p.psram_bytes > memory.MODEL_PSRAM_SHARE * board:
        print(f"warning: this model needs {p.psram_bytes / 1e6:.2f} MB of PSRAM ({p.activation_bytes / 1e6:.2f} MB "
              f"of activations), {out['share']:.0%} of the {board >> 20} MB of Espressif's {memory.CHIPS[target].name}"
              f" board, more than the {memory.MODEL_PSRAM_SHARE:.0%} that leaves room for frames and the app: use a "
              "smaller --int16-budget (int16 doubles a layer's activations) or a board with more PSRAM "
              "(`yolo11-pose inspect --memory` shows the plan)", file=sys.stderr)
    return out


#: Manifest entries that differ between two runs of the same build (when, how long): never part of "the build".
VOLATILE_MANIFEST_KEYS = ("created", "quantize_seconds")


def stable_manifest(manifest: dict) -> dict:
    """The manifest less its volatile entries: equal for two builds from the same inputs and settings."""
    return {k: v for k, v in manifest.items() if k not in VOLATILE_MANIFEST_KEYS}


def hash_files(files: list[Path]) -> str:
    import hashlib

    h = hashlib.sha256()
    for f in files:
        h.update(sha256_file(f).encode())
    return h.hexdigest()


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("yolo11-pose-esp", "esp-ppq", "torch", "ultralytics", "onnx", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


# ----------------------------------------------------------------------------------------------- simulation
class QuantizedModel:
    """A build folder's quantized graph, run by ESP-PPQ's executor: what the chip computes, on the host."""

    def __init__(self, build_dir: str | Path):
        import_ppq()
        from esp_ppq.api import load_native_graph
        from esp_ppq.executor import TorchExecutor

        d = Path(build_dir)
        man = d / "manifest.json"
        native = d / "model.native"
        if not man.is_file() or not native.is_file():
            raise UserError(f"{d} is not a complete build folder (manifest.json and model.native missing); run "
                            "`yolo11-pose build` or `yolo11-pose quantize` into it")
        self.dir = d
        self.manifest = json.loads(man.read_text())
        with _quiet(False):
            self.graph = load_native_graph(str(native))
            self.executor = TorchExecutor(self.graph, device="cpu")
        self.input = self.manifest["input"]
        self.outputs = {o["name"]: o for o in self.manifest["outputs"]}
        self.imgsz = int(self.manifest["settings"]["imgsz"])
        self.target = self.manifest["settings"]["target"]
        self.rounding = self.manifest["rounding"]
        self.kpt_shape = self.manifest.get("kpt_shape")

    def run_float(self, x: np.ndarray) -> dict[str, tuple[np.ndarray, int]]:
        """x: float 1x3xHxW input. Returns NHWC (q int array, exponent) per output."""
        import torch

        with torch.no_grad():
            ys = self.executor.forward(torch.from_numpy(np.ascontiguousarray(x, np.float32)),
                                       output_names=list(self.outputs))
        out = {}
        for name, y in zip(self.outputs, ys):
            e = self.outputs[name]["exponent"]
            bits = int(self.outputs[name]["dtype"][3:])
            q = np.rint(y.detach().cpu().numpy() / (2.0 ** e)).astype(np.int8 if bits == 8 else np.int16)
            out[name] = (np.ascontiguousarray(q.transpose(0, 2, 3, 1)), e)
        return out

    def run_device_input(self, q_nhwc: np.ndarray) -> dict[str, tuple[np.ndarray, int]]:
        """q_nhwc: the quantized HxWx3 input tensor the device preprocessor writes (see preprocess.device_input)."""
        x = np.asarray(q_nhwc, np.float32).transpose(2, 0, 1)[None] * np.float32(2.0 ** self.input["exponent"])
        return self.run_float(x)
