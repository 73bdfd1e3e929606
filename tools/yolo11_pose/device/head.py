"""The head contract: what a pose model's raw outputs are and how to decode them, as data.

One description per model family (``FAMILIES``); ``export`` takes the facts of the model it exports (class count,
keypoint layout, strides, ``reg_max``, the branch) and writes the contract's text into the ONNX, and ``quantize`` into
the ``.espdl`` metadata, under the key ``head_contract``. The Python decode (decode.py) and the C++ postprocessor
(``parse_head_contract`` in include/yolo11_pose/postprocess.hpp, called by the ESP-DL adapter at model load) read
that text; neither knows a family. Files made before the contract existed (YOLO11 only) have no ``head`` key: both
sides then use ``legacy()`` (the C++ ``derive_head_contract``), and tests check that the two agree.

Text (one line, no spaces, ``;``-separated ``key=value`` after a version tag), e.g. YOLO26's end-to-end branch::

    yolo-pose-head/1;family=yolo26;branch=one2one;decoder=topk;strides=8,16,32;reg_max=1;nc=1;kpt_shape=17,3;
    kpt_decode=1,0.5;box=box0,box1,box2;score=score0,score1,score2;kpt=kpt0,kpt1,kpt2

Decoding, per level l with stride s and grid cell (gx, gy):
- score: one logit per class; a candidate passes when logit >= logit(conf) (an integer test on the raw tensor);
- box: ``reg_max`` == 1: four distances (left, top, right, bottom) in grid cells; > 1: 4 x reg_max DFL logits whose
  softmax expectation is the distance; box = ((gx + 0.5) -/+ d) * s;
- keypoints: x = (raw_x * a + gx + b) * s (``kpt_decode=a,b``), same for y; the third value, if any, a visibility logit;
- decoder ``nms``: best class per anchor, class-aware greedy NMS; ``topk``: the one-to-one (end-to-end) branch, no NMS:
  the ``max_det`` best (anchor, class) pairs above the threshold, ties in anchor then class order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

FORMAT = "yolo-pose-head/1"
METADATA_KEY = "head_contract"  # not "head": Ultralytics' own ONNX metadata has that (the class name)
DECODERS = ("nms", "topk")
BRANCHES = ("one2one", "one2many")

# Limits the C++ postprocessor accepts (include/yolo11_pose/postprocess.hpp; test_heads checks they agree).
MAX_LEVELS = 3
MAX_REG_MAX = 32
MAX_CLASSES = 4096
MAX_KPT_CHANNELS = 3 * 1024
MAX_NAME = 63  # characters of an output name
MAX_TEXT = 1024  # characters of the whole contract text


@dataclass(frozen=True)
class Family:
    """What a family's head does that its tensor shapes do not say."""

    name: str
    reg_max: int  # Ultralytics' default for the family (a model's own head.reg_max wins at export)
    kpt_decode: tuple[float, float]  # x = (raw * a + grid + b) * stride
    branches: dict = field(default_factory=dict)  # branch -> decoder
    default_branch: str = "one2many"
    about: str = ""


FAMILIES: dict[str, Family] = {
    # Ultralytics Pose.kpts_decode: (raw * 2 + (anchor - 0.5)) * stride, anchor = grid + 0.5
    "yolov8": Family("yolov8", 16, (2.0, 0.0), {"one2many": "nms"}, "one2many", "YOLOv8-pose: DFL boxes, NMS"),
    "yolo11": Family("yolo11", 16, (2.0, 0.0), {"one2many": "nms"}, "one2many", "YOLO11-pose: DFL boxes, NMS"),
    # Ultralytics Pose26.kpts_decode: (raw + anchor) * stride; Detect.postprocess: top-k of the one-to-one branch
    "yolo26": Family("yolo26", 1, (1.0, 0.5), {"one2one": "topk", "one2many": "nms"}, "one2one",
                     "YOLO26-pose: direct boxes; end-to-end top-k (one2one) or NMS (one2many)"),
}


@dataclass(frozen=True)
class HeadContract:
    family: str = "yolo11"
    branch: str = "one2many"
    decoder: str = "nms"
    strides: tuple[int, ...] = (8, 16, 32)
    reg_max: int = 16
    nc: int = 1
    kpt_shape: tuple[int, int] = (17, 3)
    kpt_decode: tuple[float, float] = (2.0, 0.0)
    box: tuple[str, ...] = ("box0", "box1", "box2")
    score: tuple[str, ...] = ("score0", "score1", "score2")
    kpt: tuple[str, ...] = ("kpt0", "kpt1", "kpt2")

    def __post_init__(self):
        check(self)

    # -- names ------------------------------------------------------------------------------------------------
    @property
    def num_levels(self) -> int:
        return len(self.strides)

    @property
    def output_names(self) -> tuple[str, ...]:
        """The exported order: box0, score0, box1, score1, ..., then kpt0, kpt1, ..."""
        pairs = [n for bs in zip(self.box, self.score) for n in bs]
        return tuple(pairs + list(self.kpt))

    def level_names(self, level: int) -> tuple[str, str, str]:
        return self.box[level], self.score[level], self.kpt[level]

    @property
    def box_channels(self) -> int:
        return 4 * self.reg_max

    @property
    def kpt_channels(self) -> int:
        return self.kpt_shape[0] * self.kpt_shape[1]

    @property
    def kind(self) -> str:
        """Short name of the head, e.g. ``yolo26 one2one (top-k, no NMS)``."""
        how = "top-k, no NMS" if self.decoder == "topk" else "NMS"
        return f"{self.family} {self.branch} ({how})"

    def describe(self) -> str:
        a, b = self.kpt_decode
        box = "4 direct distances" if self.reg_max == 1 else f"DFL, {self.reg_max} bins per side"
        kx = f"(raw{'' if a == 1 else f' * {a:g}'} + grid{'' if b == 0 else f' + {b:g}'}) * stride"
        return (f"{self.kind}; strides {','.join(map(str, self.strides))}; boxes: {box}; keypoints "
                f"{self.kpt_shape[0]}x{self.kpt_shape[1]}: {kx}; {self.nc} class{'es' if self.nc > 1 else ''}")

    # -- text -------------------------------------------------------------------------------------------------
    def to_text(self) -> str:
        def num(v: float) -> str:
            return f"{v:g}"

        parts = [FORMAT, f"family={self.family}", f"branch={self.branch}", f"decoder={self.decoder}",
                 f"strides={','.join(map(str, self.strides))}", f"reg_max={self.reg_max}", f"nc={self.nc}",
                 f"kpt_shape={self.kpt_shape[0]},{self.kpt_shape[1]}",
                 f"kpt_decode={num(self.kpt_decode[0])},{num(self.kpt_decode[1])}",
                 f"box={','.join(self.box)}", f"score={','.join(self.score)}", f"kpt={','.join(self.kpt)}"]
        return ";".join(parts)

    def to_dict(self) -> dict:
        return {"family": self.family, "branch": self.branch, "decoder": self.decoder, "strides": list(self.strides),
                "reg_max": self.reg_max, "nc": self.nc, "kpt_shape": list(self.kpt_shape),
                "kpt_decode": list(self.kpt_decode), "box": list(self.box), "score": list(self.score),
                "kpt": list(self.kpt)}

    def with_(self, **kw) -> HeadContract:
        return replace(self, **kw)

    # -- tensors ----------------------------------------------------------------------------------------------
    def check_shapes(self, shapes: dict, input_w: int, input_h: int) -> None:
        """``shapes``: output name -> NHWC shape. ValueError naming the first tensor that does not fit."""
        for level, s in enumerate(self.strides):
            gh, gw = input_h // s, input_w // s
            for name, c in zip(self.level_names(level), (self.box_channels, self.nc, self.kpt_channels)):
                if name not in shapes:
                    raise ValueError(f"outputs lack {name}, which the head contract ({self.kind}) names")
                shp = tuple(int(v) for v in shapes[name])
                if shp != (1, gh, gw, c):
                    raise ValueError(f"{name} is {'x'.join(map(str, shp))}, the head contract ({self.kind}) wants "
                                     f"1x{gh}x{gw}x{c} for a {input_w}x{input_h} input")


def _err(msg: str) -> ValueError:
    return ValueError(f"head contract: {msg}")


def check(c: HeadContract) -> None:
    """The limits the C++ postprocessor enforces, with the same rules."""
    if c.decoder not in DECODERS:
        raise _err(f"decoder {c.decoder!r} is not one of {', '.join(DECODERS)}")
    if c.branch not in BRANCHES:
        raise _err(f"branch {c.branch!r} is not one of {', '.join(BRANCHES)}")
    n = len(c.strides)
    if not 1 <= n <= MAX_LEVELS or any(s < 1 or s > 1024 for s in c.strides):
        raise _err(f"strides {c.strides}: 1..{MAX_LEVELS} levels, each 1..1024")
    if len(c.kpt_decode) != 2 or not all(math.isfinite(v) for v in c.kpt_decode):
        raise _err(f"kpt_decode {c.kpt_decode}: two finite numbers (scale, offset)")
    if not 1 <= c.reg_max <= MAX_REG_MAX:
        raise _err(f"reg_max {c.reg_max} is not 1..{MAX_REG_MAX}")
    if not 1 <= c.nc <= MAX_CLASSES:
        raise _err(f"nc {c.nc} is not 1..{MAX_CLASSES}")
    k, nd = c.kpt_shape
    if k < 1 or nd not in (2, 3) or k * nd > MAX_KPT_CHANNELS:
        raise _err(f"kpt_shape {c.kpt_shape}: K >= 1, dims 2 or 3, K * dims <= {MAX_KPT_CHANNELS}")
    names = (*c.box, *c.score, *c.kpt)
    if not (len(c.box) == len(c.score) == len(c.kpt) == n):
        raise _err(f"one box, score and kpt output per level ({n} levels)")
    if any(not x or len(x) > MAX_NAME or any(ch in x for ch in ",;= \n\"\\") for x in names) or len(set(names)) != len(names):
        raise _err(f"output names must be distinct, 1..{MAX_NAME} characters without , ; = quotes or spaces")
    if any(ch in c.family for ch in ",;= \n\"\\") or not c.family or len(c.family) > 15:
        raise _err(f"family {c.family!r}: 1..15 characters without , ; = quotes or spaces")


def from_text(text: str) -> HeadContract:
    """Parse ``to_text()``'s format (strict: unknown keys, missing keys and bad values are errors)."""
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        raise _err(f"not a contract text of at most {MAX_TEXT} characters")
    parts = text.strip().split(";")
    if parts[0] != FORMAT:
        raise _err(f"starts with {parts[0][:40]!r}, not {FORMAT!r} (a newer file? update yolo11-pose)")
    kv: dict[str, str] = {}
    for p in parts[1:]:
        key, sep, value = p.partition("=")
        if not sep or key in kv:
            raise _err(f"bad or repeated entry {p[:40]!r}")
        kv[key] = value
    need = ("family", "branch", "decoder", "strides", "reg_max", "nc", "kpt_shape", "kpt_decode", "box", "score", "kpt")
    missing = [k for k in need if k not in kv]
    extra = [k for k in kv if k not in need]
    if missing or extra:
        raise _err(f"missing {missing}" if missing else f"unknown keys {extra}")
    def ints(s: str) -> tuple[int, ...]:
        return tuple(int(v) for v in s.split(","))

    try:
        ks = ints(kv["kpt_shape"])
        kd = tuple(float(v) for v in kv["kpt_decode"].split(","))
        if len(ks) != 2 or len(kd) != 2:
            raise ValueError
        return HeadContract(family=kv["family"], branch=kv["branch"], decoder=kv["decoder"],
                            strides=ints(kv["strides"]), reg_max=int(kv["reg_max"]), nc=int(kv["nc"]),
                            kpt_shape=(ks[0], ks[1]), kpt_decode=(kd[0], kd[1]), box=tuple(kv["box"].split(",")),
                            score=tuple(kv["score"].split(",")), kpt=tuple(kv["kpt"].split(",")))
    except ValueError as e:
        if str(e).startswith("head contract"):
            raise
        raise _err(f"bad number in {text[:120]!r}") from None


def make(family: str, branch: str | None = None, *, nc: int, kpt_shape, strides=(8, 16, 32),
         reg_max: int | None = None) -> HeadContract:
    """The contract of a family's branch (its default when None) for a model's facts."""
    if family not in FAMILIES:
        raise _err(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    fam = FAMILIES[family]
    branch = branch or fam.default_branch
    if branch not in fam.branches:
        raise _err(f"{family} has no {branch} branch (it has {', '.join(fam.branches)})")
    n = len(strides)
    return HeadContract(family=family, branch=branch, decoder=fam.branches[branch], strides=tuple(int(s) for s in strides),
                        reg_max=int(reg_max if reg_max is not None else fam.reg_max),
                        nc=int(nc), kpt_shape=(int(kpt_shape[0]), int(kpt_shape[1])), kpt_decode=fam.kpt_decode,
                        box=tuple(f"box{i}" for i in range(n)), score=tuple(f"score{i}" for i in range(n)),
                        kpt=tuple(f"kpt{i}" for i in range(n)))


#: The contract of every file made before the contract was written into files: YOLO11/YOLOv8, 3 levels.
LEGACY = make("yolo11", nc=1, kpt_shape=(17, 3))


def infer_kpt_shape(channels: int) -> tuple[int, int]:
    """K x 3 when the channel count divides by 3, else K x 2 (the rule for files that do not say)."""
    nd = 3 if channels % 3 == 0 else 2
    if channels < 2 or channels % nd:
        raise ValueError(f"{channels} keypoint channels is neither K*3 nor K*2")
    return channels // nd, nd


def legacy(shapes: dict | None = None, kpt_shape=None) -> HeadContract:
    """The contract of a file without one: YOLO11's, with the class count and keypoint layout of its tensors
    (``shapes``: name -> NHWC shape) or of ``kpt_shape`` (the file's ``kpt_shape`` metadata)."""
    nc, ks = LEGACY.nc, tuple(kpt_shape) if kpt_shape else None
    reg_max = LEGACY.reg_max
    if shapes:
        if LEGACY.score[0] in shapes:
            nc = int(shapes[LEGACY.score[0]][-1])
        if LEGACY.box[0] in shapes:
            c = int(shapes[LEGACY.box[0]][-1])
            if c != 4 * LEGACY.reg_max:
                raise _err(f"{LEGACY.box[0]} has {c} channels and the file has no head contract; only YOLO11/YOLOv8 "
                           f"files ({4 * LEGACY.reg_max} DFL channels) may omit it: re-export with yolo11-pose")
        if ks is None and LEGACY.kpt[0] in shapes:
            ks = infer_kpt_shape(int(shapes[LEGACY.kpt[0]][-1]))
    return LEGACY.with_(nc=nc, kpt_shape=ks or LEGACY.kpt_shape, reg_max=reg_max)


def from_metadata(meta: dict, shapes: dict | None = None) -> HeadContract:
    """The contract a file's metadata (ONNX or .espdl) holds, else the legacy one for its tensor shapes."""
    text = (meta or {}).get(METADATA_KEY)
    if text:
        return from_text(text)
    import ast

    ks = meta.get("kpt_shape") if meta else None
    if isinstance(ks, str):
        try:
            ks = ast.literal_eval(ks)
        except (ValueError, SyntaxError):
            ks = None
    return legacy(shapes, ks if isinstance(ks, (list, tuple)) and len(ks) == 2 else None)


__all__ = ["BRANCHES", "DECODERS", "FAMILIES", "FORMAT", "LEGACY", "METADATA_KEY", "HeadContract", "check",
           "from_metadata", "from_text", "infer_kpt_shape", "legacy", "make"]
