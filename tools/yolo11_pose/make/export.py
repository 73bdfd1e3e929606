"""Ultralytics pose checkpoint -> ONNX with the head split into 9 raw outputs (no decode, no sigmoid, no concat).

Keeping the head raw lets ESP-PPQ give boxes, scores and keypoints their own quantization scales, and moves the cheap
decode into the C++ postprocessor, which only touches candidates above the score threshold. What the outputs are and
how to decode them is the head contract (head.py), written into the ONNX metadata (key ``head_contract``). YOLOv8/YOLO11
(``Pose``) and YOLO26 (``Pose26``) heads; for YOLO26, ``branch`` picks the end-to-end one-to-one branch (top-k, no
NMS; the default) or the one-to-many branch (NMS), the other being removed as Ultralytics' ``fuse()`` does.
"""
from __future__ import annotations

import io
import types
import warnings
from pathlib import Path

import numpy as np

from yolo11_pose import cfg
from yolo11_pose.device import head as heads
from yolo11_pose.util import UserError, atomic_path, sha256_file

OPSET = 13
IMGSZ_MIN, IMGSZ_MAX, IMGSZ_STEP = cfg.IMGSZ_MIN, cfg.IMGSZ_MAX, cfg.IMGSZ_MULTIPLE


def check_imgsz(imgsz: int) -> int:
    return cfg.check_imgsz(imgsz)


#: Ultralytics head classes this exporter knows, and the family (head.FAMILIES) each belongs to.
HEAD_CLASSES = ("Pose", "Pose26")


def check_branch(branch: str | None) -> str | None:
    if branch not in (None, "auto", *heads.BRANCHES):
        raise UserError(f"unknown --branch {branch!r}; use {', '.join(heads.BRANCHES)} or auto (the family's default)")
    return None if branch in (None, "auto") else branch


def family_of(model) -> str:
    """head.FAMILIES key of a loaded Ultralytics pose model."""
    head = model.model[-1]
    if type(head).__name__ == "Pose26":
        return "yolo26"
    return "yolov8" if getattr(head, "legacy", False) else "yolo11"


def _plain(e: BaseException) -> str:
    """First line of an exception's text without Ultralytics' emoji and decorations, to sit inside our one line."""
    import re

    text = str(e).splitlines()[0] if str(e) else ""
    return re.sub(r"\s+", " ", re.sub(r"[^\x20-\x7e]", " ", text)).strip(" :") or e.__class__.__name__


def load_pose_model(weights: str, branch: str | None = None):
    """Load a pose checkpoint or architecture YAML as a fused float32 torch module in eval mode.

    ``branch``: one2one / one2many (None: the family's default, head.FAMILIES). The module gets a ``pose_head``
    attribute: the head contract (head.HeadContract) of what it outputs after prepare_for_export()."""
    import torch  # noqa: F401  (ultralytics needs it imported first on some setups)
    from ultralytics import YOLO
    from ultralytics.nn.modules.head import Pose

    branch = check_branch(branch)

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
        raise UserError(f"weights {w} not found ({_plain(e)}); check the path, or connect to the internet for official "
                        "names") from None
    except Exception as e:  # noqa: BLE001  (torch/pickle errors have many types)
        raise UserError(f"cannot load weights {w}: {e.__class__.__name__}: {_plain(e)}"
                        "; give an Ultralytics pose checkpoint (.pt) or YAML") from None
    model = yolo.model
    head = model.model[-1]
    if not isinstance(head, Pose):
        task = getattr(yolo, "task", "?")
        raise UserError(f"{w} is a {task} model ({type(head).__name__} head), not a pose model; give a *-pose "
                        "checkpoint such as yolo11n-pose.pt")
    if type(head).__name__ not in HEAD_CLASSES:
        raise UserError(f"{w} has a {type(head).__name__} head; supported pose heads: {', '.join(HEAD_CLASSES)} "
                        "(YOLOv8, YOLO11, YOLO26)")
    family = family_of(model)
    fam = heads.FAMILIES[family]
    branch = branch or fam.default_branch
    has_one2one = getattr(head, "one2one_cv2", None) is not None
    has_one2many = getattr(head, "cv2", None) is not None
    if branch not in fam.branches or (branch == "one2one" and not has_one2one) or \
            (branch == "one2many" and not has_one2many):
        have = [b for b, ok in (("one2one", has_one2one), ("one2many", has_one2many)) if ok and b in fam.branches]
        raise UserError(f"{w} ({family}) has no {branch} branch; use --branch {' or '.join(have) or 'auto'}")
    if hasattr(model, "end2end"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.end2end = branch == "one2one"  # fuse() below drops the other branch
    model = model.float().eval()
    try:
        model = model.fuse(verbose=False)
    except TypeError:
        model = model.fuse()
    head = model.model[-1]
    model.pose_head = heads.make(family, branch, nc=int(head.nc), kpt_shape=tuple(int(v) for v in head.kpt_shape),
                                 strides=tuple(int(v) for v in head.stride.tolist()), reg_max=int(head.reg_max))
    return model


def _branch_modules(head, branch: str):
    """(box, score, keypoint feature, keypoint output) module lists of one branch; the last is None for Pose."""
    p = "one2one_" if branch == "one2one" else ""
    kpts = getattr(head, p + "cv4_kpts", None)  # Pose26: cv4 is a feature stem, cv4_kpts the 1x1 output conv
    return getattr(head, p + "cv2"), getattr(head, p + "cv3"), getattr(head, p + "cv4"), kpts


def _raw_head_forward(self, x):
    """Replacement Pose/Pose26.forward: per level box (4*reg_max), score (nc), keypoint (nk) maps, in the head
    contract's output order (box0, score0, box1, score1, ..., kpt0, kpt1, ...)."""
    cv2, cv3, cv4, cv4k = _branch_modules(self, self._export_branch)
    boxes = [cv2[i](x[i]) for i in range(self.nl)]
    scores = [cv3[i](x[i]) for i in range(self.nl)]
    kpts = [cv4[i](x[i]) if cv4k is None else cv4k[i](cv4[i](x[i])) for i in range(self.nl)]
    return (*[t for bs in zip(boxes, scores) for t in bs], *kpts)


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
    """Patch the head and attention blocks in place; return (model, kpt_shape, nc). ``model.pose_head`` is the
    head contract of the patched model's outputs."""
    from ultralytics.nn.modules.block import Attention

    head = model.model[-1]
    contract = model.pose_head
    if head.nl != contract.num_levels or head.nl > heads.MAX_LEVELS:
        raise UserError(f"the model has {head.nl} detection levels; the device postprocessor takes up to "
                        f"{heads.MAX_LEVELS} (P3-P5)")
    head._export_branch = contract.branch
    head.forward = types.MethodType(_raw_head_forward, head)
    for m in model.modules():
        if isinstance(m, Attention):
            m.forward = types.MethodType(_static_attention_forward, m)
    return model, tuple(int(v) for v in head.kpt_shape), int(head.nc)


def export_onnx(weights: str, imgsz: int, out_dir: str | Path, simplify: bool = True,
                branch: str | None = None) -> dict:
    """Write out_dir/model.onnx; return facts about it (kpt_shape, nc, names, head contract, hash).

    ``branch``: YOLO26's one2one (end-to-end top-k, default) or one2many (NMS) branch; None/auto: the default."""
    import onnx
    import torch

    check_imgsz(imgsz)
    out_dir = Path(out_dir)
    model = load_pose_model(weights, branch)
    model, kpt_shape, nc = prepare_for_export(model)
    contract = model.pose_head
    dummy = torch.zeros(1, 3, imgsz, imgsz)
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, dummy, buf, opset_version=OPSET, input_names=["images"],
                          output_names=list(contract.output_names), do_constant_folding=True, dynamo=False)
    proto = onnx.load_from_string(buf.getvalue())
    if simplify:
        import onnxslim

        proto = onnxslim.slim(proto)
    onnx.checker.check_model(proto)
    meta = {"kpt_shape": list(kpt_shape), "nc": nc, "imgsz": imgsz, "output_names": list(contract.output_names),
            "producer": "yolo11-pose export", heads.METADATA_KEY: contract.to_text()}
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, str(v)
    out = out_dir / "model.onnx"
    with atomic_path(out) as tmp:
        onnx.save(proto, str(tmp))
    return {"onnx": str(out), "sha256": sha256_file(out), **meta, "head": contract.to_text(), "head_kind": contract.kind}


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
    if not names or not m.graph.node:
        size = Path(path).stat().st_size
        raise UserError(f"{path} holds no ONNX graph ({size} bytes; empty or not an ONNX model); give the model.onnx "
                        f"of `yolo11-pose export`, or {fix}")
    try:
        contract = heads.from_text(meta[heads.METADATA_KEY]) if heads.METADATA_KEY in meta else heads.LEGACY
    except ValueError as e:
        raise UserError(f"{path}: {e}; {fix}") from None
    if set(names) != set(contract.output_names):
        who = "was exported by Ultralytics" if "ultralytics" in meta.get("author", "").lower() or \
            names == ["output0"] else f"has the outputs {', '.join(names)}"
        raise UserError(f"{path} {who}, not with the {len(contract.output_names)} raw head outputs "
                        f"({', '.join(contract.output_names)}) that the device postprocessor reads; {fix}")
    out = {}
    for k in ("kpt_shape", "nc", "imgsz"):
        if k in meta:
            out[k] = ast.literal_eval(meta[k])
    if heads.METADATA_KEY not in meta:  # exported before the contract: YOLO11's, if the tensors are YOLO11's
        shapes = {}
        for o in m.graph.output:  # NCHW -> the NHWC shapes head.legacy() checks
            d = [x.dim_value for x in o.type.tensor_type.shape.dim]
            if len(d) == 4:
                shapes[o.name] = (d[0], d[2], d[3], d[1])
        try:
            contract = heads.legacy(shapes, out.get("kpt_shape"))
        except ValueError as e:
            raise UserError(f"{path}: {e}") from None
    out["head"] = contract
    return out


def run_onnx(path: str | Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """Float reference run with ONNX Runtime; returns NCHW outputs by name."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {"images": x.astype(np.float32)})))
