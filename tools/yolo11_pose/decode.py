"""Reference postprocessing of the 9 raw head outputs (Ultralytics semantics).

This is the Python twin of the C++ postprocessor (include/yolo11_pose/postprocess.hpp); tests run both on the same
quantized outputs and require the same detections in the same order. Rules, in order:
candidates by the best class logit >= logit(conf) (exactly the integer test ``q >= ceil(logit(conf) / 2^exp)``),
DFL box decode, keypoints ``(raw*2 + anchor) * stride`` with sigmoid confidence, class-aware greedy NMS in model-input
pixels (stable sort by score), then mapping through the letterbox/crop back to source pixels, clipped.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import cfg
from .preprocess import Letterbox

STRIDES = (8, 16, 32)
OUTPUT_NAMES = ("box0", "score0", "box1", "score1", "box2", "score2", "kpt0", "kpt1", "kpt2")
REG_MAX = 16
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
    nd = 3 if channels % 3 == 0 else 2
    if channels % nd:
        raise ValueError(f"{channels} keypoint channels is neither K*3 nor K*2")
    return channels // nd, nd


def iou_one_to_many(b: np.ndarray, others: np.ndarray) -> np.ndarray:
    ix1 = np.maximum(b[0], others[:, 0])
    iy1 = np.maximum(b[1], others[:, 1])
    ix2 = np.minimum(b[2], others[:, 2])
    iy2 = np.minimum(b[3], others[:, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area = (b[2] - b[0]) * (b[3] - b[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def candidates(outputs: dict, input_w: int, input_h: int, threshold: float | None, kpt_shape=None):
    """Anchors whose best class logit >= threshold (all anchors when None), decoded in model-input pixels.

    Returns boxes (N,4) xyxy, scores (N,) sigmoid, classes (N,), keypoints (N,K,3), in anchor order.
    """
    missing = [n for n in OUTPUT_NAMES if n not in outputs]
    if missing:
        raise ValueError(f"outputs lack {', '.join(missing)}; export the model with `yolo11-pose export`")
    boxes, scores, classes, kpts = [], [], [], []
    for level, s in enumerate(STRIDES):
        box, score, kpt = (_as_float(outputs[f"{n}{level}"]) for n in ("box", "score", "kpt"))
        gh, gw = input_h // s, input_w // s
        for name, t in (("box", box), ("score", score), ("kpt", kpt)):
            if t.shape[:2] != (gh, gw):
                raise ValueError(f"{name}{level} is {t.shape[0]}x{t.shape[1]}, expected {gh}x{gw} for a "
                                 f"{input_w}x{input_h} input")
        if box.shape[2] != 4 * REG_MAX:
            raise ValueError(f"box{level} has {box.shape[2]} channels, expected {4 * REG_MAX}")
        k, nd = infer_kpt_shape(kpt.shape[2], kpt_shape)
        flat = score.reshape(-1, score.shape[2])
        cls = flat.argmax(1)
        best = flat[np.arange(len(flat)), cls]
        idx = np.arange(len(flat)) if threshold is None else np.nonzero(best >= threshold)[0]  # y, then x
        ys, xs = np.divmod(idx, gw)
        bins = box.reshape(-1, 4, REG_MAX)[idx]
        e = np.exp(bins - bins.max(-1, keepdims=True))
        d = (e / e.sum(-1, keepdims=True)) @ np.arange(REG_MAX, dtype=np.float64)
        cx, cy = xs + 0.5, ys + 0.5
        boxes.append(np.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], 1) * s)
        scores.append(sigmoid(best[idx]))
        classes.append(cls[idx])
        kr = kpt.reshape(-1, k, nd)[idx]
        kp = np.empty((len(idx), k, 3))
        kp[..., 0] = (kr[..., 0] * 2.0 + xs[:, None]) * s
        kp[..., 1] = (kr[..., 1] * 2.0 + ys[:, None]) * s
        kp[..., 2] = sigmoid(kr[..., 2]) if nd == 3 else 1.0
        kpts.append(kp)
    return tuple(np.concatenate(a) for a in (boxes, scores, classes, kpts))


def decode(outputs: dict, input_w: int, input_h: int, letterbox: Letterbox | None = None,
           conf: float = DEFAULT_CONF, iou: float = DEFAULT_IOU, kpt_thr: float = DEFAULT_KPT_THR,
           max_det: int = DEFAULT_MAX_DET, kpt_shape=None) -> list[Pose]:
    """Decode NHWC head outputs (float arrays or (q, exponent) pairs) into poses in source-image pixels."""
    boxes, scores, classes, kpts = candidates(outputs, input_w, input_h, logit(conf), kpt_shape)
    if not len(boxes):
        return []
    keep = nms(boxes, scores, classes, iou, max_det)
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
