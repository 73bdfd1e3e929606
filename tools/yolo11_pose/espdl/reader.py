"""Read an ESP-DL ``.espdl`` model file and describe what the device will load.

File layout (esp-dl ``fbs_loader``): a header ``magic[4] | uint32 encrypted | uint32 payload_size`` followed by
4 zero bytes for ``EDL2`` (16-byte header so that tensors stay 16-byte aligned) or nothing for the older ``EDL1``
(12-byte header); then ``payload_size`` bytes of a FlatBuffers ``espdl.Model`` (schema ``fbs_loader/espdl.fbs``).
The payload is parsed with the FlatBuffers classes generated for that schema that ship in the installed esp-ppq
package. Tensors in the file are already in ESP-DL's layout (activations NHWC), so the shapes reported here are
the ones ``dl::TensorBase::shape`` will show on the device; a value is ``int * 2**exponent``.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from yolo11_pose.espdl.container import _HEADER_SIZE, EspdlError, _Corrupt, _fbs, open_graph  # noqa: F401 (re-exported)

__all__ = [
    "EspdlError",
    "EspdlHeader",
    "EspdlTensor",
    "EspdlParam",
    "EspdlLayer",
    "EspdlModel",
    "read_espdl",
]


# --- header ---------------------------------------------------------------------------------------------------
_PACKED_MAGICS = (b"PDL1", b"PDL2", b"PDL3")

# TensorDataType enum of espdl.fbs -> (name, bytes per element). STRING has no fixed size.
_DTYPES = {
    0: ("undefined", 0),
    1: ("float32", 4),
    2: ("uint8", 1),
    3: ("int8", 1),
    4: ("uint16", 2),
    5: ("int16", 2),
    6: ("int32", 4),
    7: ("int64", 8),
    8: ("string", 0),
    9: ("bool", 1),
    10: ("float16", 2),
    11: ("float64", 8),
    12: ("uint32", 4),
    13: ("uint64", 8),
}
# Node inputs at this index are the filter (weights) whose exponents tell per-channel from per-tensor.
_FILTER_INPUT = {"Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1}


def _dtype_name(code: int) -> str:
    return _DTYPES.get(code, (f"unknown({code})", 0))[0]


# --- data model -----------------------------------------------------------------------------------------------
@dataclass
class EspdlHeader:
    magic: str
    encrypted: int  # 0 = plain, 1 = AES-128-CTR
    payload_size: int
    header_size: int


@dataclass
class EspdlTensor:
    """A graph input or output as ESP-DL sees it."""

    name: str
    shape: list  # NHWC; an entry is an int, or a string for a symbolic dimension
    dtype: str
    exponents: list[int]


@dataclass
class EspdlParam:
    """A constant (initializer): weights, biases, lookup tables, shape constants."""

    name: str
    dtype: str
    dims: list[int]
    exponents: list[int]
    nbytes: int  # elements * element size
    stored_bytes: int  # bytes the payload spends on it, 16-byte alignment padding included
    layout: str  # from the doc_string, e.g. "(N/16)HWC16"; "" when not recorded
    external: bool  # data_location == EXTERNAL: the values are not inside this file


@dataclass
class EspdlLayer:
    """One node of the graph, in execution order."""

    name: str
    op_type: str
    precision: str  # dtype of its (first) output; else of its quant_type attribute
    output_shape: list | None
    output_exponents: list[int]
    param_bytes: int
    params: list[str]  # names of the constants it uses (inputs and lookup-table attributes)
    weights: str  # "per-channel", "per-tensor", "single-channel" or "" when it has no filter
    inputs: list[str]
    outputs: list[str]
    attributes: dict


@dataclass
class EspdlModel:
    path: str
    file_size: int
    header: EspdlHeader
    ir_version: int
    producer_name: str
    producer_version: str
    domain: str
    model_version: int
    doc_string: str
    opset_import: dict[str, int]
    metadata_props: dict[str, str]
    graph_name: str
    inputs: list[EspdlTensor]
    outputs: list[EspdlTensor]
    layers: list[EspdlLayer]
    params: list[EspdlParam]
    test_inputs: list[str]  # names of embedded test input values (dl::Model::test())
    test_outputs: list[str]
    weight_granularity: str  # "per-channel", "per-tensor", "mixed" or "none"
    filters_per_channel: int
    filters_per_tensor: int
    trailing_bytes: int  # bytes after the payload (padding added when models are packed)
    op_counts: dict[str, int] = field(default_factory=dict)
    integrity: str = ""  # integrity.verify(): which recorded SHA-256s the file matches, or "unverified: ..."

    @property
    def total_param_bytes(self) -> int:
        return sum(p.nbytes for p in self.params)

    @property
    def total_stored_param_bytes(self) -> int:
        return sum(p.stored_bytes for p in self.params)

    @property
    def has_test_values(self) -> bool:
        return bool(self.test_inputs or self.test_outputs)

    def output(self, name: str) -> EspdlTensor:
        for t in self.outputs:
            if t.name == name:
                return t
        raise KeyError(name)


def _s(b) -> str:
    return "" if b is None else bytes(b).decode("utf-8", errors="replace")


def _n(length: int, buf_len: int, min_elem: int = 4) -> int:
    """A vector length, checked against the buffer: the Python FlatBuffers runtime does not verify buffers, and a
    corrupt length would otherwise make the loops below run for billions of iterations."""
    if length < 0 or length * min_elem > buf_len:
        raise _Corrupt(f"vector of {length} entries does not fit in the payload")
    return length


def _ints(obj, accessor: str, buf_len: int) -> list[int]:
    """An int64 vector (exponents, dims) through the numpy accessor: no per-element Python calls."""
    if getattr(obj, accessor + "IsNone")():
        return []
    _n(getattr(obj, accessor + "Length")(), buf_len, 8)
    return [int(v) for v in getattr(obj, accessor + "AsNumpy")()]


def _value_info(vi, fbs, buf_len: int) -> tuple[str, list | None, str, list[int]]:
    name = _s(vi.Name())
    exps = _ints(vi, "Exponents", buf_len)
    ti = vi.ValueInfoType()
    if ti is None or ti.ValueType() != fbs.TypeInfoValue.tensor_type:
        return name, None, "undefined", exps
    table = ti.Value()
    tts = fbs.TensorTypeAndShape()
    tts.Init(table.Bytes, table.Pos)
    shape_t = tts.Shape()
    shape = None
    if shape_t is not None:
        shape = []
        for k in range(_n(shape_t.DimLength(), buf_len)):
            dv = shape_t.Dim(k).Value()
            if dv is None:
                shape.append("?")
            elif dv.DimType() == fbs.DimensionValueType.PARAM:
                shape.append(_s(dv.DimParam()) or "?")
            else:
                shape.append(int(dv.DimValue()))
    return name, shape, _dtype_name(tts.ElemType()), exps


def _attribute(a, fbs, buf_len: int):
    t = a.AttrType()
    at = fbs.AttributeType
    if t == at.FLOAT:
        f = a.F()
        return None if f is None else float(f.F())
    if t == at.INT:
        i = a.I()
        return None if i is None else int(i.I())
    if t == at.STRING:
        if a.SIsNone():
            return ""
        _n(a.SLength(), buf_len, 1)
        return _s(a.SAsNumpy().tobytes())
    if t == at.INTS:
        return _ints(a, "Ints", buf_len)
    if t == at.FLOATS:
        if a.FloatsIsNone():
            return []
        _n(a.FloatsLength(), buf_len)
        return [float(v) for v in a.FloatsAsNumpy()]
    if t == at.STRINGS:
        return [_s(a.Strings(k)) for k in range(_n(a.StringsLength(), buf_len))]
    if t == at.TENSOR:
        tt = a.T()
        return {"tensor": _s(tt.Name()) if tt is not None else ""}
    return f"<attribute type {t}>"


def _param(t, buf_len: int) -> EspdlParam:
    dtype_code = t.DataType()
    name, size = _DTYPES.get(dtype_code, (f"unknown({dtype_code})", 0))
    dims = _ints(t, "Dims", buf_len)
    count = 1
    for d in dims:
        count *= max(int(d), 0)
    # Where the values live: raw_data (16-byte aligned blocks, what esp-ppq writes) or the typed ONNX-style arrays.
    stored = 0
    if not t.RawDataIsNone():
        stored += 16 * _n(t.RawDataLength(), buf_len, 16)
    for acc, width in (("FloatData", 4), ("Int32Data", 4), ("Int64Data", 8), ("DoubleData", 8), ("Uint64Data", 8)):
        if not getattr(t, acc + "IsNone")():
            stored += width * _n(getattr(t, acc + "Length")(), buf_len, width)
    doc = _s(t.DocString())
    layout = doc.split("==>", 1)[1].strip() if "==>" in doc else doc.strip()
    return EspdlParam(
        name=_s(t.Name()),
        dtype=name,
        dims=dims,
        exponents=_ints(t, "Exponents", buf_len),
        nbytes=count * size if size else stored,
        stored_bytes=stored,
        layout="" if layout == "UNK" else layout,
        external=t.DataLocation() == 1,
    )


def graph_tensors(g, fbs, buf_len: int) -> tuple[list, list, dict]:
    """Graph inputs, outputs (EspdlTensor) and every described tensor: name -> (shape, dtype, exponents)."""
    inputs, outputs, value_infos = [], [], {}
    for k in range(_n(g.InputLength(), buf_len)):
        name, shape, dtype, exps = _value_info(g.Input(k), fbs, buf_len)
        inputs.append(EspdlTensor(name, shape, dtype, exps))
    for k in range(_n(g.OutputLength(), buf_len)):
        name, shape, dtype, exps = _value_info(g.Output(k), fbs, buf_len)
        outputs.append(EspdlTensor(name, shape, dtype, exps))
    for k in range(_n(g.ValueInfoLength(), buf_len)):
        name, shape, dtype, exps = _value_info(g.ValueInfo(k), fbs, buf_len)
        if name:  # esp-ppq writes one unnamed placeholder entry
            value_infos[name] = (shape, dtype, exps)
    for t in inputs + outputs:  # graph inputs/outputs describe their tensors too
        value_infos.setdefault(t.name, (t.shape, t.dtype, t.exponents))
    return inputs, outputs, value_infos


def _parse_payload(payload, fbs) -> dict:
    buf_len = len(payload)
    m, g = open_graph(payload, fbs)
    inputs, outputs, value_infos = graph_tensors(g, fbs, buf_len)

    params = [_param(g.Initializer(k), buf_len) for k in range(_n(g.InitializerLength(), buf_len))]
    by_name = {p.name: p for p in params}

    layers, op_counts = [], {}
    per_channel = per_tensor = 0
    for k in range(_n(g.NodeLength(), buf_len)):
        node = g.Node(k)
        op = _s(node.OpType())
        ins = [_s(node.Input(j)) for j in range(_n(node.InputLength(), buf_len))]
        outs = [_s(node.Output(j)) for j in range(_n(node.OutputLength(), buf_len))]
        attrs = {}
        for j in range(_n(node.AttributeLength(), buf_len)):
            a = node.Attribute(j)
            attrs[_s(a.Name())] = _attribute(a, fbs, buf_len)
        # Constants used: initializer inputs, plus lookup tables named by a string attribute (Swish's "lut").
        used = [n for n in ins if n in by_name]
        used += [v for v in attrs.values() if isinstance(v, str) and v in by_name and v not in used]
        shape, dtype, exps = value_infos.get(outs[0], (None, "", [])) if outs else (None, "", [])
        if not dtype or dtype == "undefined":
            qt = str(attrs.get("quant_type", ""))
            dtype = {"S8": "int8", "S16": "int16", "U8": "uint8", "U16": "uint16", "F32": "float32"}.get(qt, qt)
        weights = ""
        fi = _FILTER_INPUT.get(op)
        if fi is not None and len(ins) > fi and ins[fi] in by_name:
            n_exp = len(by_name[ins[fi]].exponents)
            out_ch = shape[-1] if shape and isinstance(shape[-1], int) else None
            if n_exp > 1:
                weights, per_channel = "per-channel", per_channel + 1
            elif out_ch == 1:
                weights = "single-channel"  # one output channel: per-channel and per-tensor coincide
            else:
                weights, per_tensor = "per-tensor", per_tensor + 1
        layers.append(
            EspdlLayer(
                name=_s(node.Name()),
                op_type=op,
                precision=dtype,
                output_shape=shape,
                output_exponents=exps,
                param_bytes=sum(by_name[n].nbytes for n in used),
                params=used,
                weights=weights,
                inputs=ins,
                outputs=outs,
                attributes=attrs,
            )
        )
        op_counts[op] = op_counts.get(op, 0) + 1

    if per_channel and per_tensor:
        granularity = "mixed"
    elif per_channel:
        granularity = "per-channel"
    elif per_tensor:
        granularity = "per-tensor"
    else:
        granularity = "none"

    opsets = {}
    for k in range(_n(m.OpsetImportLength(), buf_len)):
        o = m.OpsetImport(k)
        opsets[_s(o.Domain())] = int(o.Version())
    meta = {}
    for k in range(_n(m.MetadataPropsLength(), buf_len)):
        e = m.MetadataProps(k)
        meta[_s(e.Key())] = _s(e.Value())

    return dict(
        ir_version=int(m.IrVersion()),
        producer_name=_s(m.ProducerName()),
        producer_version=_s(m.ProducerVersion()),
        domain=_s(m.Domain()),
        model_version=int(m.ModelVersion()),
        doc_string=_s(m.DocString()),
        opset_import=opsets,
        metadata_props=meta,
        graph_name=_s(g.Name()),
        inputs=inputs,
        outputs=outputs,
        layers=layers,
        params=params,
        test_inputs=[_s(g.TestInputsValue(k).Name()) for k in range(_n(g.TestInputsValueLength(), buf_len))],
        test_outputs=[_s(g.TestOutputsValue(k).Name()) for k in range(_n(g.TestOutputsValueLength(), buf_len))],
        weight_granularity=granularity,
        filters_per_channel=per_channel,
        filters_per_tensor=per_tensor,
        op_counts=op_counts,
    )


def read_espdl(path: str | Path) -> EspdlModel:
    """Parse a single-model ``.espdl`` file; raise EspdlError (one line: problem and fix) on anything unreadable."""
    p = Path(path)
    if not p.exists():
        raise EspdlError(f"{p} does not exist; pass the path of an .espdl file")
    if not p.is_file():
        raise EspdlError(f"{p} is not a file; pass the path of an .espdl file")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise EspdlError(f"cannot read {p} ({e.strerror or e}); check its permissions") from None

    if not data:
        raise EspdlError(f"{p} is not an .espdl model: it is empty (0 bytes); re-export or re-copy the file")
    magic = data[:4]
    if magic in _PACKED_MAGICS:
        raise EspdlError(
            f"{p} is a packed multi-model ESP-DL file ({magic.decode()}), not a single model; "
            "inspect the .espdl files it was packed from"
        )
    if magic not in _HEADER_SIZE:
        raise EspdlError(
            f"{p} is not an .espdl model (magic {magic!r}, expected b'EDL2'); "
            "pass a file written by esp-ppq's espdl export"
        )
    hsize = _HEADER_SIZE[magic]
    if len(data) < hsize:
        raise EspdlError(
            f"{p} is truncated: {len(data)} bytes, shorter than the {hsize}-byte header; re-export or re-copy the file"
        )
    encrypted, payload_size = struct.unpack_from("<II", data, 4)
    header = EspdlHeader(magic.decode(), encrypted, payload_size, hsize)
    if encrypted == 1:
        # ESP-DL decrypts with a 128-bit key passed to dl::Model; without it the payload is noise, so stop here.
        raise EspdlError(
            f"{p} is encrypted (AES-128-CTR); inspection needs the decrypted model: "
            "inspect the unencrypted export (or decrypt it with its 128-bit key) instead"
        )
    if encrypted != 0:
        raise EspdlError(
            f"{p} has an invalid encryption flag {encrypted} in its header (0 or 1 expected); "
            "the file is corrupt, re-export or re-copy it"
        )
    available = len(data) - hsize
    if payload_size > available:
        raise EspdlError(
            f"{p} is truncated: header announces a {payload_size}-byte payload but only {available} bytes follow; "
            "re-export or re-copy the file"
        )
    payload = memoryview(data)[hsize : hsize + payload_size]
    fbs = _fbs()
    try:
        fields = _parse_payload(payload, fbs)
    except (_Corrupt, struct.error, IndexError, ValueError, TypeError, AttributeError, OverflowError,
            MemoryError, RecursionError) as e:
        # The FlatBuffers runtime does no verification: damaged bytes surface as any of these.
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        detail = detail if len(detail) <= 90 else detail[:87] + "..."
        raise EspdlError(
            f"{p} has a corrupt FlatBuffers payload ({detail}); re-export or re-copy the file"
        ) from None
    from yolo11_pose.espdl.integrity import verify

    return EspdlModel(
        path=str(p),
        file_size=len(data),
        header=header,
        trailing_bytes=available - payload_size,
        **fields,
        integrity=verify(p, data),  # after the parse: a damaged structure is reported as such first
    )
