"""Run an ``.espdl`` file the way ESP-DL runs it: integer arithmetic read from ESP-DL's own kernels.

The executor reads the file alone (no ESP-PPQ graph) and computes every node with the semantics of ESP-DL 3.3.9
(espressif/esp-dl @ 12c0616d); the source that decides each rule is named beside it. Where ESP-DL and ESP-PPQ's
simulation differ, this follows ESP-DL:

- Softmax (int8 in, float out; ``dl_module_softmax.hpp`` ``forward_lut``): a 256-entry ``expf`` table of the
  dequantized input *without* subtracting the row maximum, a left-to-right float32 sum, one float32 division.
- MatMul (``dl_module_matmul.hpp``): the right operand is a conv filter in the packed layout (N/16)K16 + remainder
  (int16: blocks of 8). ESP-DL 3.3.9 never reads the ``input1_layout`` attribute that ESP-PPQ 1.3.12 writes, so a
  ``native_kn`` operand is read as packed too, like the device does (``matmul_layout="attribute"`` honours it).
- Swish / Sigmoid: int8 nodes with a table read it (``lut_s8``: ``table[x + 128]``); int16 nodes never do
  (``dl_module_swish.hpp`` / ``dl_module_sigmoid.hpp`` ``deserialize`` reads ``lut`` only for 8-bit): they run the
  float path, ``round(sigmoid(x) * x)`` with ``expf`` and a double division. Only an explicit int16 ``LUT`` node reads
  an int16 table (nearest entry, ``dl_base_lut.cpp``).
- Add / Concat / Split / Slice / Reshape / Transpose / MaxPool copy or add raw integers and ignore exponents
  (``dl_base_add.cpp`` ``c_impl_add_n_n``, ``dl_module_concat.hpp``...): a file where they differ computes garbage on
  the chip as here; the coverage gate (coverage.py) refuses it.
- Accumulators: the C kernels sum int8 products in 32 bits and int16 products in 64 bits, exactly. The chips do not:
  the ESP32-S3 keeps int8 sums in saturating 20-bit lanes and int16 sums in saturating 40-bit lanes, so the two agree
  only while every partial sum fits (accumulators.py bounds them for int8; 2**39 is out of reach for int16 here).
- Rounding: half to even on ESP32-P4 (``fcvt.w.s ... rne`` / ``shift_and_round_half_even``), half up on ESP32-S3
  (``floorf(x + 0.5)`` / ``(v + half) >> s``), per ``CONFIG_ROUND_HALF_EVEN_ENABLED`` in ``dl_define_private.hpp``.

Integer sums run as float convolutions only where they are exact (every partial sum below 2**24 in float32,
below 2**53 in float64): the bound is computed from the weights before choosing the precision.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from yolo11_pose.espdl import coverage
from yolo11_pose.espdl.reader import EspdlError, _attribute, _Corrupt, _fbs, _ints, _n, _s, graph_tensors, open_graph
from yolo11_pose.device.preprocess import TARGET_ROUNDING

__all__ = ["ExecutorError", "EspdlGraph", "Executor", "load_graph", "shift_round", "round_float"]

ESPDL_VERSION = "3.3.9"  # the ESP-DL whose kernels these semantics are read from
MAX_ELEMENTS = 1 << 28  # no tensor of a pose model comes near this: anything larger is a corrupt or hostile file
_DTYPE = {"int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64, "float32": np.float32,
          "uint8": np.uint8, "uint16": np.uint16, "float64": np.float64}
_QTYPE = {"S8": "int8", "S16": "int16", "F32": "float32"}
_LIMITS = {"int8": (-128, 127), "int16": (-32768, 32767), "int32": (-(1 << 31), (1 << 31) - 1)}


class ExecutorError(EspdlError):
    """A file the executor cannot run, or a node it does not know; one line naming the node and the problem."""


class UnverifiedOpsError(ExecutorError, coverage.UnverifiedError):
    """The file computes something no ESP-DL output covers (coverage.py) and the user did not opt in."""


# ----------------------------------------------------------------------------------------------- the file
@dataclass
class Const:
    name: str
    value: np.ndarray  # as stored (conv filters still in the chip layout)
    exponents: list[int]
    layout: str
    offset: int = -1  # where the raw bytes start in the file (-1: not stored as raw bytes)


@dataclass
class Node:
    name: str
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict


@dataclass
class EspdlGraph:
    path: str
    inputs: list  # EspdlTensor-like (name, shape, dtype, exponents)
    outputs: list
    nodes: list[Node]
    consts: dict[str, Const]
    info: dict[str, tuple]  # tensor name -> (shape, dtype, exponents)
    metadata: dict[str, str]
    header_size: int = 16
    test_inputs: dict[str, Const] = field(default_factory=dict)
    test_outputs: dict[str, Const] = field(default_factory=dict)

    @property
    def target(self) -> str | None:
        """The chip the file records (our exports write it into the metadata); None for files that do not."""
        t = self.metadata.get("target") or self.metadata.get("chip")
        return t if t in TARGET_ROUNDING else None


def _const(t, payload: bytes, buf_len: int) -> Const:
    from yolo11_pose.espdl.reader import _DTYPES

    name = _s(t.Name())
    code = t.DataType()
    dname, size = _DTYPES.get(code, (f"unknown({code})", 0))
    dims = [int(d) for d in _ints(t, "Dims", buf_len)]
    if any(d < 0 for d in dims):
        raise ExecutorError(f"constant {name!r} has a negative dimension {dims}")
    count = int(np.prod(dims, dtype=np.int64)) if dims else 1
    if count > MAX_ELEMENTS:
        raise ExecutorError(f"constant {name!r} claims {count} elements; the file is corrupt")
    exps = [int(e) for e in _ints(t, "Exponents", buf_len)]
    doc = _s(t.DocString())
    layout = doc.split("==>", 1)[1].strip() if "==>" in doc else doc.strip()
    offset = -1
    if t.DataLocation() == 1:
        raise ExecutorError(f"constant {name!r} is stored outside the file (external data); not supported")
    dt = _DTYPE.get(dname)
    if not t.RawDataIsNone():
        if dt is None:
            raise ExecutorError(f"constant {name!r} has data type {dname}, which ESP-DL does not run")
        n = _n(t.RawDataLength(), buf_len, 16)
        o = t._tab.Offset(20)
        start = t._tab.Vector(o)
        need = count * size
        if start < 0 or start + 16 * n > buf_len or need > 16 * n:
            raise ExecutorError(f"constant {name!r}: its data ({need} bytes) lies outside the payload or is short")
        value = np.frombuffer(payload, dtype=dt, count=count, offset=start).reshape(dims).copy()
        offset = start
    elif not t.Int64DataIsNone():
        _n(t.Int64DataLength(), buf_len, 8)
        value = t.Int64DataAsNumpy().astype(np.int64)
        value = value.reshape(dims) if value.size == count else value
    elif not t.FloatDataIsNone():
        _n(t.FloatDataLength(), buf_len, 4)
        value = t.FloatDataAsNumpy().astype(np.float32)
        value = value.reshape(dims) if value.size == count else value
    elif not t.Int32DataIsNone():
        _n(t.Int32DataLength(), buf_len, 4)
        value = t.Int32DataAsNumpy().astype(np.int32)
        value = value.reshape(dims) if value.size == count else value
    elif count == 0 or dname in ("undefined",):
        value = np.zeros(dims, dtype=dt or np.int8)
    else:
        raise ExecutorError(f"constant {name!r} ({dname}) has no data")
    return Const(name, value, exps, "" if layout == "UNK" else layout, offset)


def load_graph(path: str | Path) -> EspdlGraph:
    """Parse an ``.espdl`` file into the executor's graph; EspdlError (one line) on anything unreadable."""
    path = Path(path)
    if not path.is_file():
        raise EspdlError(f"{path}: file not found")
    data = path.read_bytes()
    if len(data) < 12:
        raise EspdlError(f"{path}: {len(data)} bytes is too short for an .espdl header; the file is truncated")
    magic = data[:4]
    if magic not in (b"EDL1", b"EDL2"):
        raise EspdlError(f"{path}: not an .espdl model (magic {magic!r}; packed multi-model files must be unpacked)")
    encrypted, size = struct.unpack_from("<II", data, 4)
    if encrypted:
        raise EspdlError(f"{path}: the model is encrypted; the executor needs the plain file")
    hdr = 16 if magic == b"EDL2" else 12
    if size < 8 or hdr + size > len(data):
        raise EspdlError(f"{path}: header says {size} payload bytes but the file holds {len(data) - hdr}; truncated")
    payload = bytes(data[hdr:hdr + size])
    fbs = _fbs()
    try:
        graph = _parse(path, payload, fbs)
        graph.header_size = hdr
        return graph
    except (EspdlError, _Corrupt) as e:
        raise (type(e) if isinstance(e, EspdlError) else EspdlError)(f"{path}: {e}") from None
    except Exception as e:  # the FlatBuffers runtime does not verify buffers: any fault here is a corrupt file
        raise EspdlError(f"{path}: corrupt .espdl payload ({type(e).__name__}: {e}); re-export the model") from None


def _parse(path: Path, payload: bytes, fbs) -> EspdlGraph:
    buf_len = len(payload)
    m, g = open_graph(payload, fbs)
    inputs, outputs, info = graph_tensors(g, fbs, buf_len)
    consts = {}
    for k in range(_n(g.InitializerLength(), buf_len)):
        c = _const(g.Initializer(k), payload, buf_len)
        consts[c.name] = c
    nodes = []
    for k in range(_n(g.NodeLength(), buf_len)):
        nd = g.Node(k)
        attrs = {}
        for j in range(_n(nd.AttributeLength(), buf_len)):
            a = nd.Attribute(j)
            attrs[_s(a.Name())] = _attribute(a, fbs, buf_len)
        nodes.append(Node(_s(nd.Name()), _s(nd.OpType()),
                          [_s(nd.Input(j)) for j in range(_n(nd.InputLength(), buf_len))],
                          [_s(nd.Output(j)) for j in range(_n(nd.OutputLength(), buf_len))], attrs))
    meta = {}
    for k in range(_n(m.MetadataPropsLength(), buf_len)):
        e = m.MetadataProps(k)
        meta[_s(e.Key())] = _s(e.Value())
    tin = {}
    for k in range(_n(g.TestInputsValueLength(), buf_len)):
        c = _const(g.TestInputsValue(k), payload, buf_len)
        tin[c.name] = c
    tout = {}
    for k in range(_n(g.TestOutputsValueLength(), buf_len)):
        c = _const(g.TestOutputsValue(k), payload, buf_len)
        tout[c.name] = c
    graph = EspdlGraph(str(path), inputs, outputs, nodes, consts, info, meta, test_inputs=tin, test_outputs=tout)
    _check_graph(graph)
    return graph


def _shape_ok(shape) -> bool:
    return isinstance(shape, list) and all(isinstance(d, int) and d > 0 for d in shape)


def _check_graph(g: EspdlGraph) -> None:
    """Cheap structural checks before any work: every tensor produced before use, sane input/output shapes.

    Intermediate shapes are not checked: ESP-DL infers them itself (each module's ``get_output_shape``) and never
    reads the value_info shapes ESP-PPQ writes, some of which do not match (e.g. after its layout Transposes)."""
    if not g.inputs or not g.outputs:
        raise ExecutorError("the graph declares no inputs or no outputs")
    known = {t.name for t in g.inputs} | set(g.consts) | {""}
    for t in g.inputs + g.outputs:
        if not _shape_ok(t.shape) or int(np.prod(t.shape, dtype=np.int64)) > MAX_ELEMENTS:
            raise ExecutorError(f"graph input/output {t.name!r} has an unusable shape {t.shape}")
    for nd in g.nodes:
        for i in nd.inputs:
            if i not in known:
                raise ExecutorError(f"node {nd.name!r} ({nd.op}) reads {i!r}, which no earlier node produces")
        known.update(nd.outputs)
    for t in g.outputs:
        if t.name not in known:
            raise ExecutorError(f"output {t.name!r} is produced by no node")


def _check_size(shape) -> None:
    n = int(np.prod([int(d) for d in shape], dtype=np.int64))
    if n > MAX_ELEMENTS or n < 0:
        raise ExecutorError(f"would make a tensor of shape {list(shape)}; the file is corrupt")


# ----------------------------------------------------------------------------------------------- arithmetic
def round_float(x: np.ndarray, rounding: str) -> np.ndarray:
    """``tool::round`` on float32 values: RNE on ESP32-P4; ``floorf(x + 0.5)`` on ESP32-S3 (the 0.5 is a double
    literal, so the sum is formed in double and rounded to float before floorf, as the C code does)."""
    x = np.asarray(x, dtype=np.float32)
    if rounding == "half_even":
        return np.rint(x)
    if rounding == "half_up":
        return np.floor((x.astype(np.float64) + 0.5).astype(np.float32))
    raise ValueError(f"unknown rounding {rounding!r}")


def shift_round(v: np.ndarray, shift, rounding: str) -> np.ndarray:
    """``tool::shift_and_round``: an arithmetic right shift that rounds (half even / half up); a non-positive shift
    is a left shift. ``shift`` may be an array broadcast against ``v`` (per-channel exponents)."""
    v = np.asarray(v, dtype=np.int64)
    s = np.broadcast_to(np.asarray(shift, dtype=np.int64), v.shape)
    if np.any(s > 62) or np.any(s < -62):
        raise ExecutorError(f"shift of {int(s.max())} / {int(s.min())} bits is out of range")
    left = s <= 0
    sp = np.where(left, 0, s)
    if rounding == "half_up":
        half = np.where(left, 0, np.left_shift(np.int64(1), np.maximum(sp - 1, 0)))
        right = np.right_shift(v + half, sp)
    elif rounding == "half_even":
        q = np.right_shift(v, sp)
        r = v - np.left_shift(q, sp)
        half = np.left_shift(np.int64(1), np.maximum(sp - 1, 0))
        up = (r > half) | ((r == half) & ((q & 1) == 1))
        right = q + (up & ~left)
    else:
        raise ValueError(f"unknown rounding {rounding!r}")
    if np.any(left):
        return np.where(left, np.left_shift(v, np.where(left, -s, 0)), right)
    return right


def _sat(v: np.ndarray, dtype: str) -> np.ndarray:
    lo, hi = _LIMITS[dtype]
    return np.clip(v, lo, hi).astype(_DTYPE[dtype])


def _expf(x: np.ndarray) -> np.ndarray:
    """expf as a correctly rounded float32 (computed in double, rounded once)."""
    with np.errstate(over="ignore"):  # expf overflows to inf, as C's does
        return np.exp(np.asarray(x, dtype=np.float32).astype(np.float64)).astype(np.float32)


def float_activation(op: str, q: np.ndarray, exp_in: int, exp_out: int, rounding: str, dtype: str) -> np.ndarray:
    """ESP-DL's float path of Swish / Sigmoid on integers ``q`` (``forward_template``): ``temp = q * DL_SCALE(ei)``
    in float; ``dl::math::sigmoid`` is ``1.0 / (1.0 + expf(-x))`` (a double division, returned as float); Swish
    multiplies by ``temp`` in float; then ``round(temp * DL_RESCALE(eo))`` with the chip's rule, saturated."""
    if op not in ("Swish", "Sigmoid"):
        raise ExecutorError(f"{op} has no float path in this executor")
    t = q.astype(np.float32) * np.float32(2.0 ** exp_in)
    s = (1.0 / (1.0 + _expf(-t).astype(np.float64))).astype(np.float32)
    y = s * t if op == "Swish" else s
    y = y * np.float32(2.0 ** -exp_out)
    return _sat(round_float(y, rounding).astype(np.int64), dtype)


def _gather(table: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``table[x - min]`` for an int8 / int16 ``x``: the table holds one output per input value, in order."""
    if x.dtype == np.int8:
        return _gather8(table[np.arange(256) ^ 0x80], x)
    return np.take(table, x.view(np.uint16) ^ np.uint16(0x8000))


def _gather8(table_u8: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``table_u8[x.view(uint8)]`` (256 entries, indexed by x's raw byte): OpenCV's LUT for one-byte tables
    (ten times numpy's gather), numpy's ``take`` otherwise."""
    u = np.ascontiguousarray(x).view(np.uint8)
    if table_u8.itemsize == 1 and u.ndim and 0 < u.size < (1 << 31):
        try:
            import cv2

            out = cv2.LUT(u.reshape(-1, u.shape[-1]), np.ascontiguousarray(table_u8).view(np.uint8))
            return out.view(table_u8.dtype).reshape(x.shape)
        except (ImportError, AttributeError):
            pass
    return np.take(table_u8, u)


_INT8_GEMM: list = []


def exact_int8_gemm() -> bool:
    """Whether ``torch._int_mm`` sums int8 products exactly on this CPU (checked once, on the values that saturate
    pre-VNNI x86 kernels: oneDNN documents intermediate 16-bit saturation there). Set
    ``YOLO11_POSE_EXECUTOR_INT8_GEMM=0`` to use the float convolutions (exact by the bound) instead."""
    import os

    if not _INT8_GEMM:
        ok = os.environ.get("YOLO11_POSE_EXECUTOR_INT8_GEMM", "1") != "0"
        if ok:
            try:
                import torch

                rng = np.random.default_rng(0)
                a = rng.choice(np.array([-128, -127, 127], dtype=np.int8), size=(64, 96))
                b = rng.choice(np.array([-128, 127], dtype=np.int8), size=(96, 48))
                a[0], b[:, 0] = 127, 127  # every pair 127*127 (u8-shifted: 255*127, past int16)
                a[1], b[:, 1] = -128, -128
                got = torch._int_mm(torch.from_numpy(a), torch.from_numpy(b)).numpy()
                ok = bool(np.array_equal(got, a.astype(np.int64) @ b.astype(np.int64)))
            except (RuntimeError, AttributeError, NotImplementedError):
                ok = False
        _INT8_GEMM.append(ok)
    return _INT8_GEMM[0]


def _seq_sum(x: np.ndarray, axis: int) -> np.ndarray:
    """A float32 sum accumulated left to right, like ``sum += v`` in C (numpy's sum is pairwise; cumsum is not)."""
    return np.cumsum(x, axis=axis, dtype=np.float32).take(-1, axis=axis)


def unpack_filter(w: np.ndarray, layout: str, depthwise: bool, align: int) -> np.ndarray:
    """The chip layout of a conv filter back to plain [N, kh, kw, C] (ESP-PPQ ResetParamLayoutPattern, undone).

    Stored dims are HWCN (conv) or HWNC (depthwise); the bytes are (N/align) blocks of [kh, kw, C, align], then
    the remaining output channels as NHWC rows (conv) or as [C=1, kh, kw, n_rem] (depthwise)."""
    if w.ndim != 4:
        raise ExecutorError(f"a conv filter must be 4-D, not {list(w.shape)}")
    if depthwise:
        kh, kw, n, c = w.shape
    else:
        kh, kw, c, n = w.shape
    flat = w.reshape(-1)
    if not layout or layout in ("NHWC",):
        return flat.reshape(n, kh, kw, c)
    if layout == "HWCN":
        return np.ascontiguousarray(flat.reshape(kh, kw, c, n).transpose(3, 0, 1, 2))
    if not layout.startswith(f"(N/{align})HWC{align}"):
        raise ExecutorError(f"filter layout {layout!r} is unknown (expected (N/{align})HWC{align}[_UNALIGNED])")
    aligned = n // align * align
    head = flat[: aligned * kh * kw * c].reshape(n // align, kh, kw, c, align).transpose(0, 4, 1, 2, 3)
    head = head.reshape(aligned, kh, kw, c)
    rest = flat[aligned * kh * kw * c:]
    if aligned == n:
        return np.ascontiguousarray(head)
    n_rem = n - aligned
    if depthwise:
        tail = rest.reshape(c, kh, kw, n_rem).transpose(3, 1, 2, 0)
    else:
        tail = rest.reshape(n_rem, kh, kw, c)
    return np.ascontiguousarray(np.concatenate([head, tail], axis=0))


def unpack_matmul(b: np.ndarray, align: int) -> np.ndarray:
    """The right operand of MatMul as ESP-DL 3.3.9 reads it: each [K, N] matrix holds (N/align) blocks of
    [K, align], then the remaining columns as [n_rem, K] rows (a 1x1 conv filter in the chip layout)."""
    *batch, k, n = b.shape
    flat = b.reshape(-1, k * n)
    aligned = n // align * align
    rows = flat.shape[0]
    head = flat[:, : aligned * k].reshape(rows, n // align, k, align).transpose(0, 2, 1, 3).reshape(rows, k, aligned)
    if aligned == n:
        return head.reshape(*batch, k, n)
    tail = flat[:, aligned * k:].reshape(flat.shape[0], n - aligned, k).transpose(0, 2, 1)
    return np.concatenate([head, tail], axis=2).reshape(*batch, k, n)


# ----------------------------------------------------------------------------------------------- executor
class Executor:
    """Compute an ``.espdl`` file's outputs for an input, as ESP-DL ``Model::run()`` does.

    ``target`` picks the rounding rule (ESP32-P4 half even, ESP32-S3 half up); files that record their chip may
    omit it. ``matmul_layout``: ``"espdl-3.3.9"`` reads every MatMul right operand as packed (what ESP-DL 3.3.9
    does), ``"attribute"`` honours ESP-PPQ 1.3.12's ``input1_layout`` (what later ESP-DL releases are meant to do).
    ``gemm_device`` (e.g. ``"cuda"``): convolutions become float64 GEMMs on that torch device (see ``_gemm_conv``);
    None: oneDNN convolutions on the CPU.
    """

    def __init__(self, model: str | Path | EspdlGraph, target: str | None = None,
                 matmul_layout: str = "espdl-3.3.9", gemm_device: str | None = None,
                 allow_unverified: bool | None = None):
        self.graph = model if isinstance(model, EspdlGraph) else load_graph(model)
        self.gemm_device = gemm_device
        target = target or self.graph.target
        if target not in TARGET_ROUNDING:
            raise ExecutorError(f"{self.graph.path} does not record its chip: give the target (esp32p4 or esp32s3)"
                                " that decides the rounding rule")
        if matmul_layout not in ("espdl-3.3.9", "attribute"):
            raise ValueError("matmul_layout must be 'espdl-3.3.9' or 'attribute'")
        self.target = target
        self.rounding = TARGET_ROUNDING[target]
        self.matmul_layout = matmul_layout
        self._filters: dict[str, tuple] = {}
        self._torch_w: dict = {}
        self._plans: dict = {}
        self._ops = {
            "Conv": self._conv, "Swish": self._lut_act, "Sigmoid": self._lut_act, "LUT": self._lut_act,
            "Add": self._add, "Mul": self._mul,
            "Concat": self._concat, "Split": self._split, "Slice": self._slice, "Reshape": self._reshape,
            "Transpose": self._transpose, "MaxPool": self._maxpool, "Resize": self._resize, "MatMul": self._matmul,
            "Softmax": self._softmax, "QuantizeLinear": self._requant, "RequantizeLinear": self._requant,
            "DequantizeLinear": self._requant, "Flatten": self._reshape, "Squeeze": self._reshape,
            "Unsqueeze": self._reshape,
        }
        for nd in self.graph.nodes:
            if nd.op not in self._ops:
                raise ExecutorError(f"node {nd.name!r}: operator {nd.op} is not known to this executor "
                                    f"(ESP-DL {ESPDL_VERSION} semantics); nothing was run")
            qt = nd.attrs.get("quant_type", "S8")
            if qt not in _QTYPE:
                raise ExecutorError(f"node {nd.name!r} ({nd.op}): quant_type {qt!r} is not supported")
        # arithmetic no ESP-DL output covers is refused unless opted in (coverage.py); what was let through is kept
        allow = coverage.allowed() if allow_unverified is None else allow_unverified
        try:
            self.unverified = coverage.check(self.graph, target, allow=allow)
        except coverage.UnverifiedError as e:
            raise UnverifiedOpsError(str(e)) from None

    # -- helpers ---------------------------------------------------------------------------------------------
    @property
    def input(self):
        return self.graph.inputs[0]

    def _exp(self, name: str) -> int:
        if name in self.graph.consts:
            e = self.graph.consts[name].exponents
        else:
            e = self.graph.info.get(name, (None, None, []))[2]
        if not e:
            return 0
        if len(e) != 1:
            raise ExecutorError(f"tensor {name!r} has {len(e)} exponents; activations take one")
        return int(e[0])

    def _dtype(self, name: str, nd: Node) -> str:
        d = self.graph.info.get(name, (None, "", None))[1]
        if d in _LIMITS or d == "float32":
            return d
        return _QTYPE[nd.attrs.get("quant_type", "S8")]

    def _shape(self, name: str):
        s = self.graph.info.get(name, (None,))[0]
        return s if _shape_ok(s) else None

    # -- run -------------------------------------------------------------------------------------------------
    def run(self, x: np.ndarray | dict, keep: bool = False) -> dict[str, tuple[np.ndarray, int]]:
        """Outputs by name as (integer array, exponent); with ``keep`` every intermediate tensor too.

        Runs on one torch thread (restored afterwards): the operations are small and memory-bound, and handing each
        to a thread pool costs more than it gains (0.09 s vs 0.15 s per 640 image on 2 cores,
        benchmarks/results/executor.md); a caller wanting more throughput runs images in parallel processes."""
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._run(x, keep)
        finally:
            torch.set_num_threads(threads)

    def _run(self, x, keep: bool) -> dict[str, tuple[np.ndarray, int]]:
        g = self.graph
        feeds = x if isinstance(x, dict) else {g.inputs[0].name: x}
        env: dict[str, np.ndarray] = {}
        for t in g.inputs:
            if t.name not in feeds:
                raise ExecutorError(f"no value given for input {t.name!r}")
            v = np.asarray(feeds[t.name])
            want = _DTYPE.get(t.dtype)
            if list(v.shape) != list(t.shape) or (want is not None and v.dtype != want):
                raise ExecutorError(f"input {t.name!r} must be {t.dtype} {t.shape} (NHWC), got {v.dtype} "
                                    f"{list(v.shape)}")
            env[t.name] = v
        last = {}
        for i, nd in enumerate(g.nodes):
            for o in nd.inputs:
                if o:
                    last[o] = i
        for i, nd in enumerate(g.nodes):
            try:
                outs = self._ops[nd.op](nd, [env[n] if n in env else g.consts[n].value if n else None
                                             for n in nd.inputs])
            except ExecutorError as e:
                raise ExecutorError(f"node {nd.name!r} ({nd.op}): {e}") from None
            except (ValueError, IndexError, TypeError, KeyError, OverflowError, MemoryError) as e:
                raise ExecutorError(f"node {nd.name!r} ({nd.op}) cannot run on this file: {type(e).__name__}: {e}"
                                    ) from None
            if len(outs) != len(nd.outputs):
                raise ExecutorError(f"node {nd.name!r} ({nd.op}) makes {len(outs)} outputs, the file names "
                                    f"{len(nd.outputs)}")
            for name, v in zip(nd.outputs, outs):
                env[name] = v
            if not keep:  # free what no later node reads
                for n in nd.inputs:
                    if n in env and last.get(n) == i and n not in {t.name for t in g.outputs}:
                        del env[n]
        for t in g.outputs:
            if list(env[t.name].shape) != list(t.shape):
                raise ExecutorError(f"output {t.name!r} comes out as {list(env[t.name].shape)}, the file declares "
                                    f"{t.shape}")
        names = list(env) if keep else [t.name for t in g.outputs]
        return {n: (env[n], self._exp(n)) for n in names if n in env}

    # -- operators -------------------------------------------------------------------------------------------
    def _filter(self, nd: Node, depthwise: bool, bits: int):
        key = nd.inputs[1]
        if key not in self._filters:
            c = self.graph.consts.get(key)
            if c is None:
                raise ExecutorError("the filter is not a constant of the file")
            w = unpack_filter(c.value, c.layout, depthwise, 16 if bits == 8 else 8).astype(np.int64)
            # the largest |partial sum| any input can produce: float32 sums integers exactly below 2**24
            bound = int(np.abs(w).reshape(w.shape[0], -1).sum(axis=1).max(initial=0)) * (1 << (bits - 1))
            dtype = np.float32 if bound < (1 << 24) else np.float64
            self._filters[key] = (w, dtype, bound)
        return self._filters[key]

    def _conv(self, nd: Node, ins):
        import torch
        import torch.nn.functional as F

        x = ins[0]
        dt = self._dtype(nd.outputs[0], nd)
        bits = 8 if dt == "int8" else 16
        if x.ndim != 4:
            raise ExecutorError(f"only 2-D convolutions on NHWC tensors are supported (input {list(x.shape)})")
        group = int(nd.attrs.get("group", 1))
        cin = x.shape[3]
        depthwise = group != 1
        if depthwise and group != cin:
            raise ExecutorError(f"grouped convolution with group {group} on {cin} channels is not supported")
        w, fdt, _ = self._filter(nd, depthwise, bits)
        n = w.shape[0]
        if not depthwise and w.shape[3] != cin:
            raise ExecutorError(f"filter takes {w.shape[3]} input channels, the input has {cin}")
        pads = list(nd.attrs.get("pads") or [0, 0, 0, 0])
        strides = list(nd.attrs.get("strides") or [1, 1])
        dil = list(nd.attrs.get("dilations") or [1, 1])
        if len(pads) != 4 or len(strides) != 2 or len(dil) != 2 or min(strides + dil) < 1 or min(pads) < 0:
            raise ExecutorError(f"pads {pads}, strides {strides}, dilations {dil} are not valid for a 2-D conv")
        if self.gemm_device is None and bits == 8 and not depthwise and cin >= 16 and exact_int8_gemm() \
                and self._filters[nd.inputs[1]][2] < (1 << 31):  # (below 16 channels oneDNN's float conv wins)
            # int8 x int8 -> int32 products and sums, exact as the C kernel's (oneDNN VNNI/AMX); im2col in NHWC
            plan = self._conv_plan(nd, ins, n, dt, torch.int32)
            acc = self._int8_conv(x, nd.inputs[1], w, pads, strides, dil)
            out_t = torch.int8 if dt == "int8" else torch.int16
            if plan["int"] is not None and plan["int"][0] == "half_up":
                _, bias_half, sh = plan["int"]
                v = acc.add_(bias_half).bitwise_right_shift_(sh)  # the bound keeps every value inside int32
                return [v.clamp_(plan["lo"], plan["hi"]).to(out_t).numpy()]
            if plan["int"] is not None:
                v = acc.add_(plan["int"][1]).to(torch.float32).mul_(plan["scale"])
                return [v.clamp_(plan["lo"], plan["hi"]).round_().to(out_t).numpy()]
            acc = acc.to(plan["dtype"])  # exact: the plan's dtype holds |acc + bias|
            bias = plan["conv_bias"] if plan["conv_bias"] is not None else plan["bias"]
            if bias is not None:
                acc = acc + bias
        else:
            # NHWC memory seen as a channels-last NCHW tensor: no copies, and oneDNN's fast path.
            xt = torch.from_numpy(x).permute(0, 3, 1, 2).to(torch.float32 if fdt is np.float32 else torch.float64)
            if pads[0] == pads[2] and pads[1] == pads[3]:
                padding = (pads[0], pads[1])
            else:  # ONNX pads: [top, left, bottom, right]; zero padding in the integer domain
                xt, padding = F.pad(xt, (pads[1], pads[3], pads[0], pads[2])), (0, 0)
            key = (nd.inputs[1], xt.dtype)
            if key not in self._torch_w:
                self._torch_w[key] = torch.from_numpy(np.ascontiguousarray(w.transpose(0, 3, 1, 2))).to(
                    xt.dtype).to(memory_format=torch.channels_last)
            plan = self._conv_plan(nd, ins, n, dt, xt.dtype)
            if self.gemm_device is None:
                acc = F.conv2d(xt, self._torch_w[key], bias=plan["conv_bias"], stride=strides, padding=padding,
                               dilation=dil, groups=group)
                acc = acc.permute(0, 2, 3, 1)  # NHWC again (contiguous: the conv wrote channels-last)
            else:
                acc = self._gemm_conv(xt, nd.inputs[1], w, strides, padding, dil, depthwise)
                if plan["conv_bias"] is not None:
                    acc = acc + plan["conv_bias"].to(acc.dtype)
            if acc.dtype != plan["dtype"]:
                acc = acc.to(plan["dtype"])
            if plan["bias"] is not None:
                acc = acc + plan["bias"]
        if plan["left"] is not None:  # left shifts saturate to the 32-bit (int8) / 64-bit (int16) buffer first
            left, factor, blo, bhi = plan["left"]
            acc = torch.where(left, (acc * factor).clamp(blo, bhi), acc)
        v = acc.mul_(plan["scale"])
        v = v.round_() if self.rounding == "half_even" else v.add_(0.5).floor_()
        v = v.clamp_(plan["lo"], plan["hi"])
        return [v.to(torch.int8 if dt == "int8" else torch.int16).numpy()]

    def _int8_conv(self, x: np.ndarray, key: str, w: np.ndarray, pads, strides, dil):
        """NHWC int32 accumulators of an int8 convolution: im2col on the NHWC input (K ordered kh, kw, C like the
        unpacked filter) and one ``torch._int_mm``. Integer products and sums: exact whatever the order."""
        import torch
        import torch.nn.functional as F

        n, kh, kw, c = w.shape
        wkey = (key, "int8")
        if wkey not in self._torch_w:
            self._torch_w[wkey] = torch.from_numpy(np.ascontiguousarray(w.reshape(n, -1).T.astype(np.int8)))
        xt = torch.from_numpy(np.ascontiguousarray(x))
        if any(pads):  # ONNX pads [top, left, bottom, right]; F.pad lists the last dimension (C) first
            xt = F.pad(xt, (0, 0, pads[1], pads[3], pads[0], pads[2]))
        b, hp, wp, _ = xt.shape
        oh = (hp - dil[0] * (kh - 1) - 1) // strides[0] + 1
        ow = (wp - dil[1] * (kw - 1) - 1) // strides[1] + 1
        if oh < 1 or ow < 1:
            raise ExecutorError(f"the {kh}x{kw} filter does not fit the padded {hp}x{wp} input")
        if kh == kw == 1 and strides == [1, 1]:
            cols = xt.reshape(-1, c)
        else:
            sb, sh, sw, sc = xt.stride()
            cols = xt.as_strided((b, oh, ow, kh, kw, c), (sb, sh * strides[0], sw * strides[1], sh * dil[0],
                                                          sw * dil[1], sc)).reshape(b * oh * ow, kh * kw * c)
        return torch._int_mm(cols, self._torch_w[wkey]).view(b, oh, ow, n)

    def _gemm_conv(self, xt, key: str, w: np.ndarray, strides, padding, dil, depthwise: bool):
        """NHWC float64 accumulators of a convolution as im2col GEMMs on ``gemm_device``. Every product and partial
        sum is an integer below 2**53, so any summation order gives the C kernels' integer sums; GPU convolution
        algorithms (TF32, Winograd, FFT) would not, hence no cuDNN convolution here."""
        import torch
        import torch.nn.functional as F

        n, kh, kw, _ = w.shape
        wkey = (key, "gemm")
        if wkey not in self._torch_w:
            wt = torch.from_numpy(np.ascontiguousarray(w.transpose(0, 3, 1, 2))).to(torch.float64)
            self._torch_w[wkey] = wt.reshape(n, -1).to(self.gemm_device)
        wt = self._torch_w[wkey]
        x = xt.to(device=self.gemm_device, dtype=torch.float64)
        b, c, h, wd = x.shape
        oh = (h + 2 * padding[0] - dil[0] * (kh - 1) - 1) // strides[0] + 1
        ow = (wd + 2 * padding[1] - dil[1] * (kw - 1) - 1) // strides[1] + 1
        cols = F.unfold(x, (kh, kw), dilation=dil, padding=padding, stride=strides)  # B x C*kh*kw x L, C-major
        if depthwise:
            acc = (cols.view(b, c, kh * kw, -1) * wt.view(1, n, kh * kw, 1)).sum(2)
        else:
            acc = wt @ cols
        return acc.view(b, n, oh, ow).permute(0, 2, 3, 1).contiguous().cpu()

    def _conv_plan(self, nd: Node, ins, n: int, dt: str, conv_dtype) -> dict:
        """What requantizes one conv's accumulators, worked out once per node: (acc + bias) * 2**-shift, rounded by
        the chip's rule, saturated, in floating point where every step is exact (float32 while |acc + bias| < 2**23,
        so that x + 0.5 stays exact for half up; else float64, < 2**53): the integers of shift_and_round."""
        import torch

        if nd.name in self._plans:
            return self._plans[nd.name]
        bias = None
        if len(ins) > 2 and ins[2] is not None:
            bias = np.asarray(ins[2]).reshape(-1).astype(np.int64)
            if bias.size != n:
                raise ExecutorError(f"bias has {bias.size} values for {n} output channels")
        in_e, out_e = self._exp(nd.inputs[0]), self._exp(nd.outputs[0])
        w_e = self.graph.consts[nd.inputs[1]].exponents or [0]
        if len(w_e) == 1:
            shifts = np.full(n, out_e - w_e[0] - in_e, dtype=np.int64)
        elif len(w_e) == n:  # per-channel (ESP32-P4): srcmb with one shift per output channel
            shifts = np.asarray([out_e - e - in_e for e in w_e], dtype=np.int64)
        else:
            raise ExecutorError(f"filter has {len(w_e)} exponents for {n} output channels")
        if np.abs(shifts).max() > 60:
            raise ExecutorError(f"requantization shift {int(np.abs(shifts).max())} is out of range")
        bound = self._filters[nd.inputs[1]][2] + (int(np.abs(bias).max()) if bias is not None else 0)
        rdt = torch.float32 if bound < (1 << 23) and (shifts > 0).all() else torch.float64
        plan = {"dtype": rdt, "conv_bias": None, "bias": None, "left": None, "lo": _LIMITS[dt][0],
                "hi": _LIMITS[dt][1]}
        if bias is not None:
            if rdt == conv_dtype:  # exact inside the conv too: the bound covers acc + bias
                plan["conv_bias"] = torch.from_numpy(bias).to(rdt)
            else:
                plan["bias"] = torch.from_numpy(bias).to(rdt)
        plan["int"] = None  # int32 accumulators (the int8 GEMM path): requantize without float passes where exact
        if conv_dtype == torch.int32 and (shifts > 0).all() and bound + (1 << int(shifts.max())) < (1 << 31):
            ib = bias if bias is not None else np.zeros(n, dtype=np.int64)
            sh = int(shifts[0]) if (shifts == shifts[0]).all() else torch.from_numpy(shifts.astype(np.int32))
            if self.rounding == "half_up":  # (acc + bias + 2**(s-1)) >> s: shift_and_round, integer for integer
                plan["int"] = ("half_up", torch.from_numpy((ib + (1 << (shifts - 1))).astype(np.int32)), sh)
            elif rdt == torch.float32:  # (acc + bias) * 2**-s is exact in float32; clamping first keeps rint's result
                plan["int"] = ("half_even", torch.from_numpy(ib.astype(np.int32)), None)
        if (shifts <= 0).any():
            blo, bhi = _LIMITS["int32"] if dt == "int8" else (-(2.0 ** 63), 2.0 ** 63 - 1)
            plan["left"] = (torch.from_numpy(shifts <= 0), torch.from_numpy(2.0 ** -np.minimum(shifts, 0)).to(rdt),
                            blo, bhi)
            shifts = np.maximum(shifts, 0)
        scale = 2.0 ** -shifts.astype(np.float64)
        plan["scale"] = float(scale[0]) if (scale == scale[0]).all() else torch.from_numpy(scale).to(rdt)
        act = nd.attrs.get("activation", "Linear") or "Linear"
        if act == "ReLU":
            plan["lo"] = max(plan["lo"], 0)  # clamp at 0 after rounding, as the C code does
        elif act != "Linear":
            raise ExecutorError(f"fused activation {act!r} is not supported")
        self._plans[nd.name] = plan
        return plan

    @staticmethod
    def _activation(nd: Node, v: np.ndarray) -> np.ndarray:
        act = nd.attrs.get("activation", "Linear") or "Linear"
        if act == "Linear":
            return v
        if act == "ReLU":
            return np.maximum(v, 0)
        raise ExecutorError(f"fused activation {act!r} is not supported (ESP-DL {ESPDL_VERSION} leaves it out of "
                            "the C path)")

    def _lut_act(self, nd: Node, ins):
        x = ins[0]
        dt = self._dtype(nd.outputs[0], nd)
        lut = nd.attrs.get("lut")
        if x.dtype == np.int16 and nd.op != "LUT":
            # ESP-DL 3.3.9 dl_module_swish.hpp / dl_module_sigmoid.hpp ``deserialize``: the table is read only for
            # int8 (``quant_type == QUANT_TYPE_SYMM_8BIT``); an int16 Swish/Sigmoid runs ``forward_template`` in
            # float and the file's ``lut`` is ignored. Only an explicit LUT node reads an int16 table.
            lut = None
        if isinstance(lut, str) and lut:
            c = self.graph.consts.get(lut)
            if c is None:
                raise ExecutorError(f"lookup table {lut!r} is missing from the file")
            table = c.value.reshape(-1)
            if x.dtype == np.int8:
                if table.size != 256 or table.dtype != np.int8:
                    raise ExecutorError(f"int8 lookup table {lut!r} must hold 256 int8 values, not "
                                        f"{table.size} {table.dtype}")
                # table[x + 128], indexed by x's raw byte: one gather, no widening (lut_s8_c: table[u8(x) ^ 0x80])
                key = (lut, "u8")
                if key not in self._filters:
                    self._filters[key] = table[np.arange(256) ^ 0x80]
                return [_gather8(self._filters[key], x)]
            if x.dtype == np.int16:  # dl_base_lut.cpp lut_s16_nearest_neighbor: table of 65536/step + 1 entries
                if table.size < 2 or 65536 % (table.size - 1) or table.dtype != np.int16:
                    raise ExecutorError(f"int16 lookup table {lut!r} has {table.size} {table.dtype} entries")
                step = 65536 // (table.size - 1)
                if step & (step - 1):
                    raise ExecutorError(f"int16 lookup table step {step} is not a power of two")
                # lut_index: (uint16(x) ^ 0x8000) >> shift, the dropped bits rounding the index half to even on
                # ESP32-P4 (CONFIG_PIE_V2_BOOST) and half up elsewhere
                idx = shift_round(x.astype(np.int64) + 32768, step.bit_length() - 1, self.rounding)
                return [table[idx]]
            raise ExecutorError(f"lookup table on {x.dtype} input")
        if nd.op == "LUT":
            raise ExecutorError("LUT node without a lookup table")
        if x.dtype == np.int8 or x.dtype == np.int16:  # float path (dl_module_swish.hpp / sigmoid)
            # forward_template: every input value maps to one output, so evaluate all 256 / 65536 once and gather
            key = (nd.op, str(x.dtype), self._exp(nd.inputs[0]), self._exp(nd.outputs[0]), dt)
            if key not in self._filters:
                bits = 8 if x.dtype == np.int8 else 16
                v = np.arange(-(1 << (bits - 1)), 1 << (bits - 1), dtype=np.int64)
                self._filters[key] = float_activation(nd.op, v, key[2], key[3], self.rounding, dt)
            return [_gather(self._filters[key], x)]
        raise ExecutorError(f"{nd.op} on {x.dtype} is not supported")

    def _add(self, nd: Node, ins):
        a, b = ins
        dt = self._dtype(nd.outputs[0], nd)
        return [_sat(a.astype(np.int64) + b.astype(np.int64), dt)]

    def _mul(self, nd: Node, ins):
        # dl_base_mul.cpp: round(a * b * 2^(ea+eb-eo)) in float, exact for these magnitudes: an integer shift.
        a, b = ins
        dt = self._dtype(nd.outputs[0], nd)
        shift = self._exp(nd.outputs[0]) - self._exp(nd.inputs[0]) - self._exp(nd.inputs[1])
        return [_sat(shift_round(a.astype(np.int64) * b.astype(np.int64), shift, self.rounding), dt)]

    def _concat(self, nd: Node, ins):
        return [np.concatenate(ins, axis=int(nd.attrs.get("axis", 0)))]

    def _split(self, nd: Node, ins):
        x = ins[0]
        axis = int(nd.attrs.get("axis", 0))
        sizes = ins[1] if len(ins) > 1 and ins[1] is not None else nd.attrs.get("split")
        if sizes is None or len(sizes) == 0:
            k = len(nd.outputs)
            sizes = [x.shape[axis] // k] * k
        sizes = [int(s) for s in np.asarray(sizes).reshape(-1)]
        if sum(sizes) != x.shape[axis] or min(sizes) < 0:
            raise ExecutorError(f"split sizes {sizes} do not add up to {x.shape[axis]}")
        return np.split(x, np.cumsum(sizes)[:-1], axis=axis)

    def _slice(self, nd: Node, ins):
        x = ins[0]
        starts, ends = [np.asarray(v).reshape(-1).astype(np.int64) for v in ins[1:3]]
        axes = np.asarray(ins[3]).reshape(-1) if len(ins) > 3 and ins[3] is not None else np.arange(len(starts))
        steps = np.asarray(ins[4]).reshape(-1) if len(ins) > 4 and ins[4] is not None else np.ones(len(starts))
        sl = [slice(None)] * x.ndim
        for s, e, a, st in zip(starts, ends, axes, steps):
            if int(st) == 0:
                raise ExecutorError("slice step 0")
            dim = x.shape[int(a)]
            s, e = max(min(int(s), dim), -dim - 1), max(min(int(e), dim), -dim - 1)
            sl[int(a)] = slice(s, e, int(st))
        return [np.ascontiguousarray(x[tuple(sl)])]

    def _reshape(self, nd: Node, ins):
        # dl_module_reshape.hpp get_output_shape: the shape constant, 0 = keep (allowzero 0), one -1 inferred.
        x = ins[0]
        if nd.op != "Reshape" or len(ins) < 2 or ins[1] is None:
            shape = self._shape(nd.outputs[0])
            if shape is None:
                raise ExecutorError("the output shape is neither declared nor given")
        else:
            allowzero = int(nd.attrs.get("allowzero", 0) or 0)
            shape = [int(v) for v in np.asarray(ins[1]).reshape(-1)]
            shape = [x.shape[i] if v == 0 and not allowzero and i < x.ndim else v for i, v in enumerate(shape)]
        if shape.count(-1) > 1 or min(shape, default=0) < -1:
            raise ExecutorError(f"reshape target {shape} is invalid")
        known = int(np.prod([v for v in shape if v != -1], dtype=np.int64))
        if (-1 not in shape and known != x.size) or (-1 in shape and (known == 0 or x.size % known)):
            raise ExecutorError(f"cannot reshape {list(x.shape)} to {shape}")
        return [x.reshape(shape)]

    def _transpose(self, nd: Node, ins):
        perm = nd.attrs.get("perm")
        return [np.ascontiguousarray(np.transpose(ins[0], perm if perm else None))]

    def _maxpool(self, nd: Node, ins):
        x = ins[0]
        kh, kw = (list(nd.attrs.get("kernel_shape") or [1, 1]) + [1])[:2]
        sh, sw = (list(nd.attrs.get("strides") or [1, 1]) + [1])[:2]
        pads = list(nd.attrs.get("pads") or [0, 0, 0, 0])
        if x.ndim != 4 or nd.attrs.get("ceil_mode", 0) or len(pads) != 4 or min(kh, kw, sh, sw) < 1:
            raise ExecutorError(f"MaxPool with kernel {[kh, kw]}, strides {[sh, sw]}, pads {pads} "
                                f"on {list(x.shape)} is not supported")
        lo = np.iinfo(x.dtype).min if x.dtype.kind == "i" else -np.inf
        xp = np.pad(x, ((0, 0), (pads[0], pads[2]), (pads[1], pads[3]), (0, 0)), constant_values=lo)
        oh = (xp.shape[1] - kh) // sh + 1
        ow = (xp.shape[2] - kw) // sw + 1
        out = None
        for dy in range(kh):  # padding never wins: it is the type's minimum (dl_base_max_pool2d.cpp skips it)
            for dx in range(kw):
                v = xp[:, dy:dy + sh * (oh - 1) + 1:sh, dx:dx + sw * (ow - 1) + 1:sw, :]
                out = v.copy() if out is None else np.maximum(out, v)
        return [out]

    def _resize(self, nd: Node, ins):
        x = ins[0]
        if nd.attrs.get("mode", "nearest") != "nearest":
            raise ExecutorError(f"Resize mode {nd.attrs.get('mode')!r} is not supported (nearest only)")
        shape = self._shape(nd.outputs[0])
        scales = ins[2] if len(ins) > 2 and ins[2] is not None and np.asarray(ins[2]).size else None
        if x.ndim != 4:
            raise ExecutorError("Resize takes a 4-D NHWC tensor")
        if scales is not None and np.asarray(scales).size == 4:
            sc = np.asarray(scales, dtype=np.float32).reshape(-1)  # ONNX order NCHW: H, W at 2, 3
            sh, sw = sc[2], sc[3]
        elif shape is not None:
            sh, sw = np.float32(shape[1] / x.shape[1]), np.float32(shape[2] / x.shape[2])
        else:
            raise ExecutorError("Resize has neither scales nor a declared output shape")
        if not (np.isfinite(sh) and np.isfinite(sw) and sh > 0 and sw > 0):
            raise ExecutorError(f"Resize scales {sh}, {sw} are not usable")
        oh, ow = int(np.floor(x.shape[1] * sh)), int(np.floor(x.shape[2] * sw))  # dl_base_resize.hpp
        _check_size([x.shape[0], oh, ow, x.shape[3]])
        # dl_base_resize.cpp: in = min((int)(out * (1/scale)), size - 1), float32 arithmetic
        iy = np.minimum((np.arange(oh, dtype=np.float32) * (np.float32(1) / np.float32(sh))).astype(np.int64),
                        x.shape[1] - 1)
        ix = np.minimum((np.arange(ow, dtype=np.float32) * (np.float32(1) / np.float32(sw))).astype(np.int64),
                        x.shape[2] - 1)
        y = x[:, iy][:, :, ix]
        shift = self._exp(nd.outputs[0]) - self._exp(nd.inputs[0])
        if shift:  # round(x * output_scale / (1 << output_shift)); the result is cast without saturation
            v = y.astype(np.float32) * np.float32(2.0 ** -shift)
            y = round_float(v, self.rounding).astype(np.int64).astype(x.dtype)
        return [np.ascontiguousarray(y)]

    def _matmul(self, nd: Node, ins):
        a, b = ins
        dt = self._dtype(nd.outputs[0], nd)
        if a.ndim < 2 or b.ndim < 2:
            raise ExecutorError("MatMul with 1-D operands is not supported")
        align = 16 if b.dtype == np.int8 else 8
        layout = nd.attrs.get("input1_layout", "")
        if self.matmul_layout == "attribute" and layout in ("native_kn",):
            bm = b
        elif self.matmul_layout == "attribute" and layout not in ("", "packed"):
            raise ExecutorError(f"input1_layout {layout!r} is unknown")
        else:
            bm = unpack_matmul(b, align)
        _check_size(list(np.broadcast_shapes(a.shape[:-2], bm.shape[:-2])) + [a.shape[-2], bm.shape[-1]])
        acc = np.matmul(a.astype(np.float64), bm.astype(np.float64))  # exact: |sum| < 2**53
        shift = self._exp(nd.outputs[0]) - self._exp(nd.inputs[0]) - self._exp(nd.inputs[1])
        if np.abs(acc).max(initial=0) < 2.0 ** 52 and abs(shift) < 60:  # acc * 2**-shift exact: shift_round in float
            v = acc * 2.0 ** -shift
            out = np.rint(v) if self.rounding == "half_even" else np.floor(v + 0.5)
            out = self._activation(nd, out)
            lo, hi = _LIMITS[dt]
            return [np.clip(out, lo, hi).astype(_DTYPE[dt])]
        out = self._activation(nd, shift_round(np.rint(acc).astype(np.int64), shift, self.rounding))
        return [_sat(out, dt)]

    def _softmax(self, nd: Node, ins):
        x = ins[0]
        axis = int(nd.attrs.get("axis", -1))
        scale = np.float32(2.0 ** self._exp(nd.inputs[0]))
        if x.dtype == np.int8:
            table = _expf(scale * np.arange(-128, 128, dtype=np.float32))
            e = table[x.astype(np.int16) + 128]
        elif x.dtype == np.int16:
            v = x.astype(np.float32) * scale
            e = _expf(v - v.max(axis=axis, keepdims=True))
        elif x.dtype == np.float32:
            e = _expf(x - x.max(axis=axis, keepdims=True))
        else:
            raise ExecutorError(f"Softmax on {x.dtype}")
        s = _seq_sum(e, axis)
        return [(e / np.expand_dims(s, axis)).astype(np.float32)]

    def _requant(self, nd: Node, ins):
        # TensorBase::assign (dl_tensor_base.cpp), which both QuantizeLinear and RequantizeLinear run.
        x = ins[0]
        dt = self._dtype(nd.outputs[0], nd)
        out_e, in_e = self._exp(nd.outputs[0]), self._exp(nd.inputs[0])
        if dt == "float32":
            return [(x.astype(np.float32) * np.float32(2.0 ** in_e)).astype(np.float32)]
        if x.dtype == np.float32 or x.dtype == np.float64:
            v = x.astype(np.float32) * np.float32(2.0 ** -out_e)
            return [_sat(round_float(v, self.rounding).astype(np.int64), dt)]
        if x.dtype in (np.int8, np.int16):  # one output per input value: tabulate shift_round once, then gather
            key = ("requant", str(x.dtype), out_e - in_e, dt)
            if key not in self._filters:
                v = np.arange(np.iinfo(x.dtype).min, np.iinfo(x.dtype).max + 1, dtype=np.int64)
                self._filters[key] = _sat(shift_round(v, out_e - in_e, self.rounding) if out_e != in_e else v, dt)
            return [_gather(self._filters[key], x)]
        if out_e == in_e:
            return [_sat(x.astype(np.int64), dt)]
        return [_sat(shift_round(x.astype(np.int64), out_e - in_e, self.rounding), dt)]


# ----------------------------------------------------------------------------------------------- test values
def check_test_values(model: str | Path | EspdlGraph, target: str | None = None) -> dict:
    """What ``dl::Model::test()`` will say on the chip: the file's embedded test input run as ESP-DL runs it, each
    embedded expected output compared with ESP-DL's tolerance (dl_model_base.cpp: int16 within 1, others equal).

    Returns {"present": bool, "pass": bool, "outputs": {name: {"differing": n, "max_abs": m}}}."""
    ex = Executor(model, target)
    g = ex.graph
    if not g.test_inputs or not g.test_outputs:
        return {"present": False, "pass": False, "outputs": {}}
    feeds = {}
    for t in g.inputs:
        c = g.test_inputs.get(t.name)
        if c is None:
            raise ExecutorError(f"test values lack the input {t.name!r}")
        if list(c.value.shape) != list(t.shape) or c.exponents[:1] != t.exponents[:1]:
            raise ExecutorError(f"test input {t.name!r} is {list(c.value.shape)} 2^{c.exponents}, the model takes "
                                f"{t.shape} 2^{t.exponents}")
        feeds[t.name] = c.value
    outs = ex.run(feeds, keep=True)
    report = {}
    ok = True
    for name, c in g.test_outputs.items():
        if name not in outs:
            raise ExecutorError(f"test output {name!r} names no tensor of the model")
        v, e = outs[name]
        if c.exponents[:1] != [e] or c.value.size != v.size:
            report[name] = {"differing": int(v.size), "max_abs": None}
            ok = False
            continue
        d = np.abs(v.reshape(-1).astype(np.int64) - c.value.reshape(-1).astype(np.int64))
        tol = 1 if v.dtype == np.int16 else 0
        report[name] = {"differing": int((d > 0).sum()), "max_abs": int(d.max(initial=0))}
        ok &= bool(d.max(initial=0) <= tol)
    return {"present": True, "pass": ok, "outputs": report}


def embed_espdl_test_outputs(path: str | Path, target: str | None = None) -> dict:
    """Replace the expected test outputs ESP-PPQ embedded (its own simulation) by what ESP-DL computes for the
    embedded test input, in place and atomically, so that ``dl::Model::test()`` on the chip checks the chip against
    ESP-DL's semantics. Returns {"before": check, "after": check, "rewritten": [names]}."""
    from yolo11_pose.util import atomic_path

    path = Path(path)
    g = load_graph(path)
    before = check_test_values(g, target)
    if not before["present"] or before["pass"] and all(o["differing"] == 0 for o in before["outputs"].values()):
        return {"before": before, "after": before, "rewritten": []}
    ex = Executor(g, target)
    outs = ex.run({t.name: g.test_inputs[t.name].value for t in g.inputs}, keep=True)
    data = bytearray(path.read_bytes())
    rewritten = []
    for name, c in g.test_outputs.items():
        v, e = outs[name]
        if c.offset < 0 or c.exponents[:1] != [e] or c.value.size != v.size:
            raise ExecutorError(f"test output {name!r} cannot be rewritten in place")
        new = np.ascontiguousarray(v.reshape(c.value.shape).astype(c.value.dtype)).tobytes()
        start = g.header_size + c.offset
        if bytes(data[start:start + len(new)]) != new:
            data[start:start + len(new)] = new
            rewritten.append(name)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(bytes(data))
    after = check_test_values(path, target)
    return {"before": before, "after": after, "rewritten": rewritten}
