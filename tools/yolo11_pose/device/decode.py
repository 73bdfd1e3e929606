"""Reference postprocessing of the raw head outputs (Ultralytics semantics), driven by the head contract (head.py).

This is the Python twin of the C++ postprocessor (include/yolo11_pose/postprocess.hpp); tests run both on the same
quantized outputs and require the same detections in the same order. Rules, in order:
candidates by class logit >= logit(conf) (exactly the integer test ``q >= ceil(logit(conf) / 2^exp)``), box decode
(DFL when the contract's ``reg_max`` > 1, else direct distances), keypoints ``(raw * a + grid + b) * stride``
(``kpt_decode``) with sigmoid confidence; then, for decoder ``nms``, the best class per anchor and class-aware greedy
NMS in model-input pixels (stable sort by score), for ``topk`` (YOLO26's end-to-end branch) the ``max_det`` best
(anchor, class) pairs, ties in anchor then class order; then mapping through the letterbox/crop back to source
pixels, clipped. Without a contract (``head=None``), the legacy YOLO11 one for the tensors' shapes (head.legacy).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from yolo11_pose import cfg
from yolo11_pose.device import head as heads
from yolo11_pose.device.head import HeadContract
from yolo11_pose.device.preprocess import Letterbox

# The legacy (YOLO11) contract's facts, for callers that predate the contract; new code reads a HeadContract.
STRIDES = heads.LEGACY.strides
OUTPUT_NAMES = heads.LEGACY.output_names
REG_MAX = heads.LEGACY.reg_max
# The device's defaults (cfg/default.yaml): max_det too, so that the twin returns what YOLO11Pose::run() does.
DEFAULT_CONF, DEFAULT_IOU, DEFAULT_KPT_THR, DEFAULT_MAX_DET = cfg.CONF, cfg.IOU, cfg.KPT_THR, cfg.MAX_DET

#: COCO keypoint order; the skeleton is drawn between these indices.
COCO_KEYPOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                  "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                  "right_knee", "left_ankle", "right_ankle")
COCO_SKELETON = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9),
                 (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))


@dataclass
class Pose:
    cls: int
    score: float
    box: np.ndarray  # (4,) x1, y1, x2, y2 in source pixels
    keypoints: np.ndarray  # (K, 3): x, y, confidence
    kpt_thr: float = DEFAULT_KPT_THR
    bounds: tuple[int, int, int, int] = field(default=(0, 0, 1 << 30, 1 << 30))

    @property
    def box_int(self) -> list[int]:
        x0, y0, x1, y1 = self.bounds
        return [_iround(v, lo, hi - 1) for v, lo, hi in zip(self.box, (x0, y0, x0, y0), (x1, y1, x1, y1))]

    @property
    def kpt_int(self) -> list[list[int]]:
        x0, y0, x1, y1 = self.bounds
        return [[_iround(x, x0, x1 - 1), _iround(y, y0, y1 - 1)] for x, y in self.keypoints[:, :2]]

    @property
    def visible(self) -> np.ndarray:
        return self.keypoints[:, 2] >= self.kpt_thr

    def to_dict(self) -> dict:
        return {"cls": self.cls, "score": round(float(self.score), 6),
                "box": [round(float(v), 3) for v in self.box],
                "keypoints": [[round(float(x), 3), round(float(y), 3), round(float(c), 6)] for x, y, c in self.keypoints]}


def _iround(v: float, lo: int, hi: int) -> int:
    r = math.floor(abs(v) + 0.5) * (1 if v >= 0 else -1)  # lround: half away from zero
    return int(min(max(r, lo), hi))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def logit(p: float) -> float:
    if not 0.0 < p < 1.0:
        raise ValueError(f"threshold {p} must be between 0 and 1 (exclusive)")
    return math.log(p / (1.0 - p))


def _as_float(t) -> np.ndarray:
    """(q, exponent) -> dequantized float64; float arrays pass through. Shape must be (1, H, W, C) NHWC."""
    if isinstance(t, tuple):
        q, exp = t
        a = np.asarray(q, np.float64) * (2.0 ** int(exp))
    else:
        a = np.asarray(t, np.float64)
    if a.ndim != 4 or a.shape[0] != 1:
        raise ValueError(f"expected a 1xHxWxC output tensor, got shape {a.shape}")
    return a[0]


def nchw_to_nhwc(outputs: dict) -> dict:
    """ONNX/torch order (1,C,H,W) -> the device's (1,H,W,C)."""
    return {k: np.ascontiguousarray(np.asarray(v).transpose(0, 2, 3, 1)) for k, v in outputs.items()}


def infer_kpt_shape(channels: int, kpt_shape=None) -> tuple[int, int]:
    if kpt_shape is not None:
        k, nd = int(kpt_shape[0]), int(kpt_shape[1])
        if k * nd != channels or nd not in (2, 3):
            raise ValueError(f"kpt_shape {tuple(kpt_shape)} does not match {channels} keypoint channels")
        return k, nd
    return heads.infer_kpt_shape(channels)


def _shape(t) -> tuple:
    return tuple(np.shape(t[0] if isinstance(t, tuple) else t))


def resolve_head(outputs: dict, head: HeadContract | None = None, kpt_shape=None) -> HeadContract:
    """The contract to decode ``outputs`` with: ``head``, else the legacy one for their shapes (and ``kpt_shape``)."""
    if head is None:
        missing = [n for n in heads.LEGACY.output_names if n not in outputs]
        if missing:
            raise ValueError(f"outputs lack {', '.join(missing)}; export the model with `yolo11-pose export`")
        return heads.legacy({n: _shape(outputs[n]) for n in heads.LEGACY.output_names},
                            infer_kpt_shape(_shape(outputs["kpt0"])[-1], kpt_shape))
    if kpt_shape is not None and tuple(int(v) for v in kpt_shape) != head.kpt_shape:
        raise ValueError(f"kpt_shape {tuple(kpt_shape)} differs from the head contract's {head.kpt_shape}")
    return head


def iou_one_to_many(b: np.ndarray, others: np.ndarray) -> np.ndarray:
    ix1 = np.maximum(b[0], others[:, 0])
    iy1 = np.maximum(b[1], others[:, 1])
    ix2 = np.minimum(b[2], others[:, 2])
    iy2 = np.minimum(b[3], others[:, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area = (b[2] - b[0]) * (b[3] - b[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def _level_tensors(outputs: dict, head: HeadContract, input_w: int, input_h: int):
    """Per level: (level, stride, grid_w, box, score, kpt) as float64 HxWxC arrays, shapes checked."""
    missing = [n for n in head.output_names if n not in outputs]
    if missing:
        raise ValueError(f"outputs lack {', '.join(missing)}, which the head contract ({head.kind}) names; export "
                         "the model with `yolo11-pose export`")
    head.check_shapes({n: _shape(outputs[n]) for n in head.output_names}, input_w, input_h)
    for level, s in enumerate(head.strides):
        box, score, kpt = (_as_float(outputs[n]) for n in head.level_names(level))
        yield level, s, input_w // s, box, score, kpt


def _decode_anchors(head: HeadContract, s: int, gw: int, box, kpt, idx: np.ndarray):
    """Boxes (N,4) xyxy and keypoints (N,K,3) in model-input pixels for anchors ``idx`` (y * gw + x) of a level."""
    ys, xs = np.divmod(idx, gw)
    if head.reg_max == 1:
        d = box.reshape(-1, 4)[idx]
    else:
        bins = box.reshape(-1, 4, head.reg_max)[idx]
        e = np.exp(bins - bins.max(-1, keepdims=True))
        d = (e / e.sum(-1, keepdims=True)) @ np.arange(head.reg_max, dtype=np.float64)
    cx, cy = xs + 0.5, ys + 0.5
    boxes = np.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], 1) * s
    k, nd = head.kpt_shape
    a, b = head.kpt_decode
    kr = kpt.reshape(-1, k, nd)[idx]
    kp = np.empty((len(idx), k, 3))
    kp[..., 0] = (kr[..., 0] * a + xs[:, None] + b) * s
    kp[..., 1] = (kr[..., 1] * a + ys[:, None] + b) * s
    kp[..., 2] = sigmoid(kr[..., 2]) if nd == 3 else 1.0
    return boxes, kp


def candidates(outputs: dict, input_w: int, input_h: int, threshold: float | None, kpt_shape=None,
               head: HeadContract | None = None):
    """Anchors whose best class logit >= threshold (all anchors when None), decoded in model-input pixels.

    Returns boxes (N,4) xyxy, scores (N,) sigmoid, classes (N,), keypoints (N,K,3), in anchor order.
    """
    head = resolve_head(outputs, head, kpt_shape)
    boxes, scores, classes, kpts = [], [], [], []
    for _, s, gw, box, score, kpt in _level_tensors(outputs, head, input_w, input_h):
        flat = score.reshape(-1, score.shape[2])
        cls = flat.argmax(1)
        best = flat[np.arange(len(flat)), cls]
        idx = np.arange(len(flat)) if threshold is None else np.nonzero(best >= threshold)[0]  # y, then x
        b, kp = _decode_anchors(head, s, gw, box, kpt, idx)
        boxes.append(b)
        scores.append(sigmoid(best[idx]))
        classes.append(cls[idx])
        kpts.append(kp)
    return tuple(np.concatenate(a) for a in (boxes, scores, classes, kpts))


def topk(outputs: dict, input_w: int, input_h: int, threshold: float | None, k: int,
         head: HeadContract | None = None, kpt_shape=None):
    """The end-to-end decoder: the ``k`` best (anchor, class) pairs with logit >= threshold (all when None), by
    logit, ties in global anchor order then class order. Returns boxes, scores (sigmoid), classes, keypoints."""
    head = resolve_head(outputs, head, kpt_shape)
    levels = list(_level_tensors(outputs, head, input_w, input_h))
    logits, anchors, classes, lvl = [], [], [], []
    offset = 0
    for level, _, _, _, score, _ in levels:
        flat = score.reshape(-1, score.shape[2])
        a, c = np.nonzero(flat >= threshold) if threshold is not None else np.indices(flat.shape).reshape(2, -1)
        logits.append(flat[a, c])
        anchors.append(a + offset)
        classes.append(c)
        lvl.append(np.full(len(a), level))
        offset += len(flat)
    logits, anchors, classes, lvl = (np.concatenate(v) for v in (logits, anchors, classes, lvl))
    order = np.lexsort((classes, anchors, -logits))[:max(int(k), 0)]
    starts = np.cumsum([0] + [sc.shape[0] * sc.shape[1] for _, _, _, _, sc, _ in levels])
    n = len(order)
    boxes, kpts = np.empty((n, 4)), np.empty((n, head.kpt_shape[0], 3))
    for level, s, gw, box, _, kpt in levels:
        sel = np.nonzero(lvl[order] == level)[0]
        if len(sel):
            boxes[sel], kpts[sel] = _decode_anchors(head, s, gw, box, kpt, anchors[order][sel] - starts[level])
    return boxes, sigmoid(logits[order]), classes[order], kpts


def decode(outputs: dict, input_w: int, input_h: int, letterbox: Letterbox | None = None,
           conf: float = DEFAULT_CONF, iou: float = DEFAULT_IOU, kpt_thr: float = DEFAULT_KPT_THR,
           max_det: int = DEFAULT_MAX_DET, kpt_shape=None, head: HeadContract | None = None) -> list[Pose]:
    """Decode NHWC head outputs (float arrays or (q, exponent) pairs) into poses in source-image pixels."""
    head = resolve_head(outputs, head, kpt_shape)
    if head.decoder == "topk":
        boxes, scores, classes, kpts = topk(outputs, input_w, input_h, logit(conf), max_det, head)
        keep = range(len(boxes))
    else:
        boxes, scores, classes, kpts = candidates(outputs, input_w, input_h, logit(conf), head=head)
        keep = nms(boxes, scores, classes, iou, max_det) if len(boxes) else []
    bounds = letterbox.bounds if letterbox is not None else (0, 0, input_w, input_h)
    x0, y0, x1, y1 = bounds
    poses = []
    for i in keep:
        b, kp = boxes[i].copy(), kpts[i].copy()
        if letterbox is not None:
            b[0::2], b[1::2] = letterbox.to_source(b[0::2], b[1::2])
            kp[:, 0], kp[:, 1] = letterbox.to_source(kp[:, 0], kp[:, 1])
        b[0::2] = np.clip(b[0::2], x0, x1)
        b[1::2] = np.clip(b[1::2], y0, y1)
        kp[:, 0] = np.clip(kp[:, 0], x0, x1)
        kp[:, 1] = np.clip(kp[:, 1], y0, y1)
        poses.append(Pose(int(classes[i]), float(scores[i]), b, kp, kpt_thr, bounds))
    return poses


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float, max_det: int) -> list[int]:
    """Greedy class-aware NMS; a stable sort keeps anchor order among equal scores (the C++ does the same)."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    suppressed = np.zeros(len(order), bool)
    for oi, i in enumerate(order):
        if suppressed[oi]:
            continue
        keep.append(int(i))
        if len(keep) >= max_det:
            break
        rest = order[oi + 1:]
        same = classes[rest] == classes[i]
        over = iou_one_to_many(boxes[i], boxes[rest]) > iou
        suppressed[oi + 1:] |= same & over
    return keep
