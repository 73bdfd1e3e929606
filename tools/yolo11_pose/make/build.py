"""export + quantize in one step, skipped when every input (by content) and setting is unchanged."""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from yolo11_pose import __version__, cfg
from yolo11_pose.espdl.compat import readable_by_declared
from yolo11_pose.make.export import check_branch, export_onnx
from yolo11_pose.make.ppq_env import check_ppq_version
from yolo11_pose.make.quantize import hash_files, quantize_settings, resolve_images, select_images
from yolo11_pose.util import UserError, ensure_writable_dir, sha256_file

BUILD_FILES = ("model.onnx", "model.espdl", "model.native", "manifest.json")


def build_key(s: cfg.Settings) -> dict:
    """Everything the output depends on: the settings marked ``key`` in cfg.SETTINGS, the weights and calibration
    images by content (touching them changes nothing), and the tool's version."""
    w = Path(s.weights)
    key = {"tool": __version__, **s.key_values()}
    del key["weights"], key["calib"]  # by content, below
    key["weights_sha256"] = sha256_file(w) if w.is_file() else f"name:{s.weights}"
    key["calib_sha256"] = hash_files(select_images(resolve_images(s.calib), s.num_calib, s.seed))
    return key


def build(weights: str, imgsz: int, target: str, bits: int, calib: str, num_calib: int, out_dir: str | Path,
          progress: bool = True, log=print, **settings) -> tuple[dict, bool]:
    """Returns (manifest, rebuilt). ``settings``: any other build setting of cfg.SETTINGS by name (calib_mode,
    int16_layers, seed, recipe, branch, force, ...); checked once by cfg.make_settings."""
    s = cfg.make_settings(weights=str(weights), imgsz=imgsz, target=target, bits=bits, calib=calib,
                          num_calib=num_calib, **settings)
    return build_settings(s, out_dir, progress=progress, log=log)


def build_settings(s: cfg.Settings, out_dir: str | Path, progress: bool = True, log=print) -> tuple[dict, bool]:
    """`build` from a settings object (cfg.make_settings): export + quantize, skipped when the build key is unchanged.
    ``s.branch``: the head branch to export (export.export_onnx; auto: the family's default)."""
    branch = check_branch(s.branch)
    check_ppq_version()  # before the export: the quantize step would refuse another ESP-PPQ
    out = ensure_writable_dir(out_dir)
    key = build_key(s)
    man_path = out / "manifest.json"
    if not s.force and man_path.is_file() and all((out / f).is_file() for f in BUILD_FILES):
        try:
            old = json.loads(man_path.read_text())
        except json.JSONDecodeError:
            old = {}
        # A model the declared ESP-DL cannot read (built before an export fix) is never "up to date".
        if (old.get("build_key") == key and old.get("espdl_sha256") == sha256_file(out / "model.espdl")
                and readable_by_declared(out / "model.espdl")):
            log(f"{out}: up to date (same weights, calibration images and settings); nothing to do")
            return old, False
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=out))
    try:
        log(f"exporting {s.weights} at {s.imgsz}x{s.imgsz} ...")
        info = export_onnx(s.weights, s.imgsz, tmp, branch=branch)
        # Quantize from the staged ONNX; the ONNX is moved in with the rest so a failed run leaves the old build.
        log(f"quantizing for {s.target}, {s.bits}-bit, {s.num_calib} calibration images ({s.calib_mode}) ...")
        weights_info = {"weights": str(s.weights), "weights_sha256": key["weights_sha256"]}
        manifest = quantize_settings(tmp / "model.onnx", s, tmp, progress=progress,
                                     extra_manifest={"build_key": key, "export": {**weights_info, "onnx_sha256":
                                                                                  info["sha256"]}})
        manifest["inputs"]["onnx"] = str(out / "model.onnx")
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        # manifest.json last: an interrupted publish leaves a folder that is not "up to date".
        (out / "manifest.json").unlink(missing_ok=True)
        for f in sorted(tmp.iterdir(), key=lambda p: p.name == "manifest.json"):
            if f.is_file():
                f.replace(out / f.name)
        return manifest, True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


ML_PACKAGES = ("torch", "ultralytics", "onnx", "esp_ppq", "onnxslim")


def missing_ml_packages() -> list[str]:
    import importlib.util

    return [m for m in ML_PACKAGES if importlib.util.find_spec(m) is None]


def check_ml_stack() -> None:
    """Fail with the install command when the ML dependencies are missing (cmake_helper says it its own way)."""
    missing = missing_ml_packages()
    if missing:
        raise UserError(f"Python packages missing: {', '.join(missing)}; install them with "
                        "`python -m pip install -e <component>` (see README)")


__all__ = ["build", "build_settings", "build_key", "check_ml_stack", "missing_ml_packages", "UserError"]
