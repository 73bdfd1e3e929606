"""Models behind one interface, and the host twin of the device.

``Twin`` is what the chip computes for a build folder: the device-exact preprocessing (preprocess.device_input), the
quantized graph run by ESP-PPQ's executor with the target's integer semantics, and the *same C++ postprocessor* that
ships in the component, built for the host (yolo11_pose.cpp). Float models (.pt through torch, .onnx through ONNX
Runtime) share the letterbox and the Python reference decode, so that comparing them with the twin measures
quantization alone.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from .decode import (COCO_SKELETON, DEFAULT_CONF, DEFAULT_IOU, DEFAULT_KPT_THR, DEFAULT_MAX_DET, Pose, decode,
                     nchw_to_nhwc)
from .preprocess import Letterbox, device_input, float_input, load_rgb
from .util import UserError


class Model:
    """predict(rgb) -> poses in source pixels; raw(rgb) -> NHWC head outputs (float) and the letterbox."""

    name: str
    imgsz: int
    kind: str
    kpt_shape = None

    def raw(self, rgb: np.ndarray) -> tuple[dict, Letterbox]:
        raise NotImplementedError

    def predict(self, rgb: np.ndarray, conf=DEFAULT_CONF, iou=DEFAULT_IOU, kpt_thr=DEFAULT_KPT_THR,
                max_det=DEFAULT_MAX_DET) -> list[Pose]:
        outs, lb = self.raw(rgb)
        return decode(outs, self.imgsz, self.imgsz, lb, conf, iou, kpt_thr, max_det, self.kpt_shape)


class TorchModel(Model):
    kind = "float .pt"

    def __init__(self, weights: str, imgsz: int):
        import torch

        from .export import check_imgsz, load_pose_model, prepare_for_export

        self.imgsz = check_imgsz(imgsz)
        self.name = Path(weights).name
        self.model, kpt_shape, _ = prepare_for_export(load_pose_model(weights))
        self.kpt_shape = kpt_shape
        self._torch = torch

    def raw(self, rgb):
        x, lb = float_input(rgb, self.imgsz, self.imgsz)
        from .decode import OUTPUT_NAMES

        with self._torch.no_grad():
            ys = self.model(self._torch.from_numpy(x))
        return nchw_to_nhwc({n: y.numpy() for n, y in zip(OUTPUT_NAMES, ys)}), lb


class OnnxModel(Model):
    kind = "float .onnx"

    def __init__(self, path: str):
        import onnxruntime as ort

        from .export import onnx_meta

        meta = onnx_meta(path)
        self.name = Path(path).name
        self.sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        shape = self.sess.get_inputs()[0].shape
        self.imgsz = int(meta.get("imgsz") or shape[2])
        self.kpt_shape = meta.get("kpt_shape")
        self.names = [o.name for o in self.sess.get_outputs()]

    def raw(self, rgb):
        x, lb = float_input(rgb, self.imgsz, self.imgsz)
        return nchw_to_nhwc(dict(zip(self.names, self.sess.run(self.names, {"images": x})))), lb


class Twin(Model):
    """The device, simulated: what `YOLO11Pose::run()` returns for this build's .espdl."""

    kind = "int twin"

    def __init__(self, build_dir: str | Path, post: str = "cpp"):
        from .quantize import QuantizedModel

        self.q = QuantizedModel(build_dir)
        self.imgsz = self.q.imgsz
        self.kpt_shape = self.q.kpt_shape
        s = self.q.manifest["settings"]
        self.name = f"{Path(build_dir).name} ({s['target']} {s['bits']}-bit)"
        self.bits = int(self.q.input["dtype"][3:])
        if post not in ("cpp", "python"):
            raise ValueError("post must be 'cpp' or 'python'")
        self.post = post

    def quantized(self, rgb) -> tuple[dict, Letterbox]:
        """NHWC (q, exponent) outputs exactly as the device's output tensors hold them."""
        q, lb = device_input(rgb, self.imgsz, self.imgsz, self.q.input["exponent"], self.bits, self.q.rounding)
        return self.q.run_device_input(q), lb

    def raw(self, rgb):
        outs, lb = self.quantized(rgb)
        return {k: (q.astype(np.float64) * 2.0 ** e) for k, (q, e) in outs.items()}, lb

    def predict(self, rgb, conf=DEFAULT_CONF, iou=DEFAULT_IOU, kpt_thr=DEFAULT_KPT_THR, max_det=DEFAULT_MAX_DET):
        outs, lb = self.quantized(rgb)
        if self.post == "python":
            return decode(outs, self.imgsz, self.imgsz, lb, conf, iou, kpt_thr, max_det, self.kpt_shape)
        from . import cpp

        return cpp.postprocess(outs, self.imgsz, self.imgsz, lb, conf=conf, iou=iou, kpt_thr=kpt_thr,
                               max_det=max_det, kpt_shape=self.kpt_shape)


def load_model(spec: str, imgsz: int | None = None, post: str = "cpp") -> Model:
    p = Path(spec)
    if p.is_dir():
        m = Twin(p, post)
        if imgsz and imgsz != m.imgsz:
            raise UserError(f"{spec} was built for imgsz {m.imgsz}, not {imgsz}; drop --imgsz or rebuild")
        return m
    if p.suffix == ".espdl":
        if (p.parent / "model.native").is_file():
            return load_model(str(p.parent), imgsz, post)
        raise UserError(f"{spec}: simulating an .espdl needs the quantized graph saved beside it by `yolo11-pose "
                        "build`/`quantize` (model.native); give that build folder")
    if p.suffix == ".onnx":
        if not p.is_file():
            raise UserError(f"ONNX model {spec} not found")
        return OnnxModel(spec)
    if p.suffix in (".pt", ".yaml", ".yml"):
        return TorchModel(spec, imgsz or 640)
    raise UserError(f"model {spec}: give a .pt checkpoint, an .onnx file or a build folder")


# ----------------------------------------------------------------------------------------------- drawing
def draw(rgb: np.ndarray, poses: list[Pose], kpt_thr: float = DEFAULT_KPT_THR):
    """Skeleton overlay as a PIL image: boxes with scores, limbs between visible keypoints, keypoints by confidence."""
    from PIL import Image, ImageDraw

    im = Image.fromarray(rgb).convert("RGB")
    d = ImageDraw.Draw(im)
    lw = max(2, round(max(im.size) / 300))
    for p in poses:
        x1, y1, x2, y2 = (float(v) for v in p.box)
        d.rectangle([x1, y1, x2, y2], outline=(255, 56, 56), width=lw)
        d.text((x1 + 3, max(0, y1 - 12)), f"{p.score:.2f}", fill=(255, 255, 255))
        kp = p.keypoints
        vis = kp[:, 2] >= kpt_thr
        if len(kp) == 17:
            for a, b in COCO_SKELETON:
                if vis[a] and vis[b]:
                    d.line([tuple(kp[a, :2]), tuple(kp[b, :2])], fill=(51, 153, 255), width=lw)
        r = lw + 1
        for (x, y, c), v in zip(kp, vis):
            if v:
                d.ellipse([x - r, y - r, x + r, y + r], fill=(0, 255, 0))
            else:  # hidden points are still reported, with their confidence: draw them hollow
                d.ellipse([x - r, y - r, x + r, y + r], outline=(160, 160, 160))
    return im


def predict_command(a) -> int:
    from tqdm import tqdm

    model = load_model(a.model, a.imgsz)
    save = Path(a.save_dir) if a.save_dir else None
    if save:
        from .util import ensure_writable_dir

        ensure_writable_dir(save)
    for img in tqdm(a.image, desc="predict", unit="img", disable=a.json or len(a.image) < 3, file=sys.stderr):
        try:
            rgb = load_rgb(img)
        except (ValueError, FileNotFoundError) as e:
            raise UserError(str(e)) from None
        t = time.time()
        poses = model.predict(rgb, a.conf, a.iou, a.kpt_thr)
        ms = (time.time() - t) * 1e3
        if a.json:
            for p in poses:
                print(json.dumps({"image": str(img), **p.to_dict()}))
        else:
            print(f"{img}: {len(poses)} pose(s) [{model.name}, {model.kind}, {model.imgsz}x{model.imgsz}, {ms:.0f} ms]")
            for p in poses:
                vis = int((p.keypoints[:, 2] >= a.kpt_thr).sum())
                print(f"  person {p.score:.2f} box {[round(float(v), 1) for v in p.box]} "
                      f"keypoints visible {vis}/{len(p.keypoints)}")
        if save:
            from .util import atomic_path

            out = save / (Path(img).stem + ".png")
            with atomic_path(out) as tmp:
                draw(rgb, poses, a.kpt_thr).save(tmp, format="PNG")
            if not a.json:
                print(f"  saved {out}")
    return 0
