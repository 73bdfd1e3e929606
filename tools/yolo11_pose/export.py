"""Ultralytics pose checkpoint -> ONNX with the head split into 9 raw outputs (no decode, no sigmoid, no concat).

Keeping the head raw lets ESP-PPQ give boxes, scores and keypoints their own quantization scales, and moves the cheap
decode into the C++ postprocessor, which only touches candidates above the score threshold.
"""
from __future__ import annotations

import io
import types
import warnings
from pathlib import Path

import numpy as np

from . import cfg
from .decode import OUTPUT_NAMES
from .util import UserError, atomic_path, sha256_file

OPSET = 13
IMGSZ_MIN, IMGSZ_MAX, IMGSZ_STEP = cfg.IMGSZ_MIN, cfg.IMGSZ_MAX, cfg.IMGSZ_MULTIPLE


def check_imgsz(imgsz: int) -> int:
    if not (IMGSZ_MIN <= imgsz <= IMGSZ_MAX) or imgsz % IMGSZ_STEP:
        raise UserError(f"imgsz {imgsz} is not supported; use a multiple of {IMGSZ_STEP} from {IMGSZ_MIN} to "
                        f"{IMGSZ_MAX} (e.g. 320 or 640)")
    return imgsz


def load_pose_model(weights: str):
    """Load a pose checkpoint or architecture YAML as a fused float32 torch module in eval mode."""
    import torch  # noqa: F401  (ultralytics needs it imported first on some setups)
    from ultralytics import YOLO
    from ultralytics.nn.modules.head import Pose

    w = str(weights)
    p = Path(w)
    # A bare name like "yolo11n-pose.pt" is left to Ultralytics, which downloads official weights when online.
    if p.suffix == ".pt" and (p.parent != Path(".") or p.exists()) and not p.is_file():
        raise UserError(f"weights {w} not found; give the path of a pose .pt checkpoint (or an official name such as "
                        "yolo11n-pose.pt, downloaded by Ultralytics)")
    if p.suffix not in (".pt", ".yaml", ".yml"):
        raise UserError(f"weights {w}: expected a .pt checkpoint or a model .yaml")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yolo = YOLO(w)  # the task comes from the file: a detect YAML must fail below
    except FileNotFoundError as e:
        raise UserError(f"weights {w} not found ({e}); check the path, or connect to the internet for official names")
    except Exception as e:  # noqa: BLE001  (torch/pickle errors have many types)
        raise UserError(f"cannot load weights {w}: {e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                        "; give an Ultralytics pose checkpoint (.pt) or YAML") from None
    model = yolo.model
    head = model.model[-1]
    if not isinstance(head, Pose):
        task = getattr(yolo, "task", "?")
        raise UserError(f"{w} is a {task} model ({type(head).__name__} head), not a pose model; give a *-pose "
                        "checkpoint such as yolo11n-pose.pt")
    if type(head).__name__ != "Pose":
        raise UserError(f"{w} has a {type(head).__name__} head; only YOLO11/YOLOv8 Pose heads are supported")
    model = model.float().eval()
    try:
        model = model.fuse(verbose=False)
    except TypeError:
        model = model.fuse()
    return model


def _raw_head_forward(self, x):
    """Replacement Pose.forward: per level box (4*reg_max), score (nc), keypoint (nk) maps, in OUTPUT_NAMES order."""
    boxes = [self.cv2[i](x[i]) for i in range(self.nl)]
    scores = [self.cv3[i](x[i]) for i in range(self.nl)]
    kpts = [self.cv4[i](x[i]) for i in range(self.nl)]
    return boxes[0], scores[0], boxes[1], scores[1], boxes[2], scores[2], kpts[0], kpts[1], kpts[2]


def _static_attention_forward(self, x):
    """Ultralytics' Attention with constant shapes, so the ONNX graph has no Shape/Gather ops.

    The batch stays -1 so that ESP-PPQ can calibrate with batches larger than the exported batch of 1.
    """
    _, c, h, w = (int(v) for v in x.shape)
    n = h * w
    qkv = self.qkv(x).view(-1, self.num_heads, self.key_dim * 2 + self.head_dim, n)
    q, k, v = qkv.split([self.key_dim, self.key_dim, self.head_dim], dim=2)
    attn = ((q * self.scale).transpose(-2, -1) @ k).softmax(dim=-1)
    y = (v @ attn.transpose(-2, -1)).view(-1, c, h, w) + self.pe(v.reshape(-1, c, h, w))
    return self.proj(y)


def prepare_for_export(model):
    """Patch the head and attention blocks in place; return (model, kpt_shape, nc)."""
    from ultralytics.nn.modules.block import Attention

    head = model.model[-1]
    if head.nl != 3:
        raise UserError(f"the model has {head.nl} detection levels; the device postprocessor expects 3 (P3-P5)")
    head.forward = types.MethodType(_raw_head_forward, head)
    for m in model.modules():
        if isinstance(m, Attention):
            m.forward = types.MethodType(_static_attention_forward, m)
    return model, tuple(int(v) for v in head.kpt_shape), int(head.nc)


def export_onnx(weights: str, imgsz: int, out_dir: str | Path, simplify: bool = True) -> dict:
    """Write out_dir/model.onnx; return facts about it (kpt_shape, nc, names, hash)."""
    import onnx
    import torch

    check_imgsz(imgsz)
    out_dir = Path(out_dir)
    model = load_pose_model(weights)
    model, kpt_shape, nc = prepare_for_export(model)
    dummy = torch.zeros(1, 3, imgsz, imgsz)
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, dummy, buf, opset_version=OPSET, input_names=["images"],
                          output_names=list(OUTPUT_NAMES), do_constant_folding=True, dynamo=False)
    proto = onnx.load_from_string(buf.getvalue())
    if simplify:
        import onnxslim

        proto = onnxslim.slim(proto)
    onnx.checker.check_model(proto)
    meta = {"kpt_shape": list(kpt_shape), "nc": nc, "imgsz": imgsz, "output_names": list(OUTPUT_NAMES),
            "producer": "yolo11-pose export"}
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, str(v)
    out = out_dir / "model.onnx"
    with atomic_path(out) as tmp:
        onnx.save(proto, str(tmp))
    return {"onnx": str(out), "sha256": sha256_file(out), **meta}


def onnx_meta(path: str | Path) -> dict:
    """Facts `yolo11-pose export` stored in its ONNX; any other file (a checkpoint, Ultralytics' own ONNX export,
    whose single decoded output cannot be quantized per head) is refused with the command that makes the right one."""
    import ast

    import onnx

    fix = "make it with `yolo11-pose export --weights W.pt --imgsz N` (or use `yolo11-pose build`)"
    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001  (protobuf's DecodeError and friends: the file is not ONNX)
        what = "a PyTorch checkpoint, not an ONNX model" if Path(path).suffix == ".pt" else \
            f"not an ONNX model ({e.__class__.__name__})"
        raise UserError(f"{path} is {what}; give the model.onnx of `yolo11-pose export`, or {fix}") from None
    meta = {p.key: p.value for p in m.metadata_props}
    names = [o.name for o in m.graph.output]
    if set(names) != set(OUTPUT_NAMES):
        who = "was exported by Ultralytics" if "ultralytics" in meta.get("author", "").lower() or \
            names == ["output0"] else f"has the outputs {', '.join(names)}"
        raise UserError(f"{path} {who}, not with the 9 raw head outputs ({', '.join(OUTPUT_NAMES)}) that the device "
                        f"postprocessor reads; {fix}")
    out = {}
    for k in ("kpt_shape", "nc", "imgsz"):
        if k in meta:
            out[k] = ast.literal_eval(meta[k])
    return out


def run_onnx(path: str | Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """Float reference run with ONNX Runtime; returns NCHW outputs by name."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {"images": x.astype(np.float32)})))
