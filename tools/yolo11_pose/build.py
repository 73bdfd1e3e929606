"""export + quantize in one step, skipped when every input (by content) and setting is unchanged."""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from . import __version__
from .compat import readable_by_declared
from .export import check_branch, check_imgsz, export_onnx
from .quantize import (DEFAULT_CALIB_MODE, DEFAULT_SEED, check_ppq_version, quantize, resolve_images,
                       select_images)
from .util import UserError, ensure_writable_dir, sha256_file

BUILD_FILES = ("model.onnx", "model.espdl", "model.native", "manifest.json")


def build_key(weights: str, imgsz: int, target: str, bits: int, calib: str, num_calib: int, calib_mode: str,
              int16_layers: list[str], seed: int, export_test_values: bool, recipe: str = "fast",
              int16_budget: float | None = None, branch: str | None = None, finetune_epochs: float | None = None,
              finetune_lr: float | None = None) -> dict:
    """Everything the output depends on. Files count by content, so touching them changes nothing."""
    w = Path(weights)
    weights_id = sha256_file(w) if w.is_file() else f"name:{weights}"
    files = select_images(resolve_images(calib), num_calib, seed)
    h = hashlib.sha256()
    for f in files:
        h.update(sha256_file(f).encode())
    key = {"tool": __version__, "weights_sha256": weights_id, "imgsz": imgsz, "target": target, "bits": bits,
           "calib_sha256": h.hexdigest(), "num_calib": num_calib, "calib_mode": calib_mode,
           "int16_layers": list(int16_layers), "seed": seed, "export_test_values": bool(export_test_values)}
    if recipe != "fast" or int16_budget is not None:  # keys of default builds stay as they were
        key.update(recipe=recipe, int16_budget=int16_budget)
    if finetune_epochs is not None or finetune_lr is not None:  # `yolo11-pose qat`
        key.update(finetune_epochs=finetune_epochs, finetune_lr=finetune_lr)
    if branch not in (None, "auto"):  # an explicit head branch (YOLO26); auto keeps the keys of earlier builds
        key.update(branch=branch)
    return key


def build(weights: str, imgsz: int, target: str, bits: int, calib: str, num_calib: int, out_dir: str | Path,
          calib_mode: str = DEFAULT_CALIB_MODE, int16_layers: list[str] | None = None, seed: int = DEFAULT_SEED,
          error_report: bool = False, export_test_values: bool = False, force: bool = False, progress: bool = True,
          log=print, recipe: str = "fast", int16_budget: float | None = None,
          device: str = "cpu", branch: str | None = None, finetune_epochs: float | None = None,
          finetune_lr: float | None = None) -> tuple[dict, bool]:
    """Returns (manifest, rebuilt). ``branch``: the head branch to export (export.export_onnx; None: the default)."""
    check_imgsz(imgsz)
    branch = check_branch(branch)
    check_ppq_version()  # before the export: the quantize step would refuse another ESP-PPQ
    int16_layers = list(int16_layers or [])
    out = ensure_writable_dir(out_dir)
    key = build_key(weights, imgsz, target, bits, calib, num_calib, calib_mode, int16_layers, seed,
                    export_test_values, recipe, int16_budget, branch, finetune_epochs, finetune_lr)
    man_path = out / "manifest.json"
    if not force and man_path.is_file() and all((out / f).is_file() for f in BUILD_FILES):
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
        log(f"exporting {weights} at {imgsz}x{imgsz} ...")
        info = export_onnx(weights, imgsz, tmp, branch=branch)
        # Quantize from the staged ONNX; the ONNX is moved in with the rest so a failed run leaves the old build.
        log(f"quantizing for {target}, {bits}-bit, {num_calib} calibration images ({calib_mode}) ...")
        weights_info = {"weights": str(weights), "weights_sha256": key["weights_sha256"]}
        manifest = quantize(tmp / "model.onnx", target, bits, calib, num_calib, tmp, calib_mode=calib_mode,
                            int16_layers=int16_layers, seed=seed, error_report=error_report,
                            export_test_values=export_test_values, progress=progress, recipe=recipe,
                            int16_budget=int16_budget, device=device, finetune_epochs=finetune_epochs,
                            finetune_lr=finetune_lr,
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


def check_ml_stack() -> None:
    """Fail with the install command when the ML dependencies are missing (used by the CMake module too)."""
    import importlib.util

    missing = [m for m in ("torch", "ultralytics", "onnx", "esp_ppq", "onnxslim") if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"Python packages missing: {', '.join(missing)}; install them with "
                        "`python -m pip install -e <component>` (see README)")


__all__ = ["build", "build_key", "check_ml_stack", "UserError"]
