"""`.espdl` reader and `yolo11-pose inspect`: Espressif's published YOLO11n-pose models and damaged copies of them,
plus small models built here with the same FlatBuffers schema (for features the published files lack)."""
from __future__ import annotations

import importlib
import json
import os
import random
import struct
from pathlib import Path

import numpy as np
import pytest

from yolo11_pose.espdl import reader as espdl
from yolo11_pose.espdl.reader import EspdlError, read_espdl
from yolo11_pose.espdl.inspect_report import format_text, inspect_command, to_json


# --- shared data --------------------------------------------------------------------------------------------------
def _shared_dir() -> Path:
    env = os.environ.get("YOLO11_POSE_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"


REF_DIR = _shared_dir() / "models" / "espdl-reference"
REF_FILES = {
    "p4_v1": REF_DIR / "p4" / "coco_pose_yolo11n_pose_s8_v1.espdl",
    "p4_v2": REF_DIR / "p4" / "coco_pose_yolo11n_pose_s8_v2.espdl",
    "s3_v1": REF_DIR / "s3" / "coco_pose_yolo11n_pose_s8_v1.espdl",
    "s3_v2": REF_DIR / "s3" / "coco_pose_yolo11n_pose_s8_v2.espdl",
}
OUTPUT_NAMES = ("box0", "score0", "box1", "score1", "box2", "score2", "kpt0", "kpt1", "kpt2")
CHANNELS = {"box": 64, "score": 1, "kpt": 17 * 3}
STRIDES = (8, 16, 32)


def _ref(key: str) -> Path:
    path = REF_FILES[key]
    if not path.is_file():
        msg = f"reference model {path} is missing (set YOLO11_POSE_SHARED or provide ../shared)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="module")
def parsed():
    cache = {}

    def get(key: str):
        if key not in cache:
            cache[key] = read_espdl(_ref(key))
        return cache[key]

    return get


def _error(path: Path) -> str:
    """The EspdlError message for ``path``, with the path itself removed (tmp_path holds the test's name)."""
    with pytest.raises(EspdlError) as exc:
        read_espdl(path)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(str(path))
    return msg.replace(str(path), "<file>")


def _copy_with(src: Path, dst: Path, edits: dict[int, bytes] | None = None, length: int | None = None) -> Path:
    data = bytearray(src.read_bytes())
    if length is not None:
        del data[length:]
    for offset, chunk in (edits or {}).items():
        data[offset : offset + len(chunk)] = chunk
    dst.write_bytes(bytes(data))
    return dst


# --- the published models -----------------------------------------------------------------------------------------
@pytest.mark.shared
@pytest.mark.parametrize("key", sorted(REF_FILES))
def test_reference_models_inputs_and_outputs(parsed, key):
    m = parsed(key)
    raw = _ref(key).read_bytes()
    magic, flag, size, pad = struct.unpack_from("<4sIII", raw, 0)
    assert (m.header.magic, m.header.encrypted, m.header.payload_size) == (magic.decode(), flag, size)
    assert m.header.magic == "EDL2" and m.header.header_size == 16 and pad == 0
    assert m.file_size == len(raw) == 16 + size + m.trailing_bytes

    assert [(t.name, t.shape, t.dtype) for t in m.inputs] == [("images", [1, 640, 640, 3], "int8")]
    assert len(m.inputs[0].exponents) == 1
    # README of the shared models: the p4 PTQ model's input exponent is -6, the others -7.
    assert m.inputs[0].exponents == ([-6] if key == "p4_v1" else [-7])

    assert sorted(t.name for t in m.outputs) == sorted(OUTPUT_NAMES)
    for t in m.outputs:
        kind, level = t.name[:-1], int(t.name[-1])
        side = 640 // STRIDES[level]
        assert t.shape == [1, side, side, CHANNELS[kind]], t.name
        assert t.dtype == "int8"
        assert len(t.exponents) == 1 and -16 < t.exponents[0] < 16
    assert m.output("kpt0").shape[-1] == 51
    assert not m.has_test_values  # the published files carry no test input/outputs


@pytest.mark.shared
@pytest.mark.parametrize("key", sorted(REF_FILES))
def test_reference_models_weight_granularity(parsed, key):
    m = parsed(key)
    params = {p.name: p for p in m.params}
    convs = [layer for layer in m.layers if layer.op_type == "Conv"]
    assert len(convs) > 50
    expect = "per-channel" if key == "p4_v1" else "per-tensor"
    assert m.weight_granularity == expect
    for layer in convs:
        weight = params[layer.inputs[1]]
        assert weight.dtype == "int8"
        out_ch = layer.output_shape[-1]
        # Per-channel files carry one exponent per output channel on every filter, per-tensor files one.
        n_exp = out_ch if expect == "per-channel" else 1
        assert len(weight.exponents) == n_exp, layer.name
        assert layer.weights == (expect if out_ch > 1 else "single-channel")
        bias = params[layer.inputs[2]]
        assert bias.dtype == "int32" and len(bias.exponents) == n_exp
        assert "(N/16)HWC16" in weight.layout or "NHWC" in weight.layout
    n_multi = sum(1 for layer in convs if layer.output_shape[-1] > 1)
    counted = m.filters_per_channel if expect == "per-channel" else m.filters_per_tensor
    assert counted == n_multi
    assert f"weights: {expect}" in format_text(m)


@pytest.mark.shared
@pytest.mark.parametrize("key", sorted(REF_FILES))
def test_reference_models_parameter_bytes(parsed, key):
    m = parsed(key)
    # Every constant is counted by its element count; the FlatBuffers vectors hold at least that much.
    for p in m.params:
        count = int(np.prod(p.dims)) if p.dims else 1
        assert p.nbytes == count * np.dtype(p.dtype).itemsize, p.name
        assert p.nbytes <= p.stored_bytes < p.nbytes + 16 or p.nbytes == 0, p.name
        assert p.stored_bytes % 16 == 0 and not p.external
    assert 2_500_000 < m.total_param_bytes <= m.total_stored_param_bytes < m.file_size
    # Each constant belongs to at most one layer here (no weight sharing in YOLO11n-pose).
    assert sum(layer.param_bytes for layer in m.layers) <= m.total_param_bytes
    # YOLO11n-pose has about 2.9 M parameters, nearly all int8 weights.
    int8_bytes = sum(p.nbytes for p in m.params if p.dtype == "int8")
    assert 2_700_000 < int8_bytes < 3_000_000
    swish = [layer for layer in m.layers if layer.op_type == "Swish"]
    assert swish and all(layer.param_bytes == 256 for layer in swish)  # the int8 lookup table


@pytest.mark.shared
def test_json_round_trips(parsed):
    m = parsed("p4_v1")
    d = to_json(m)
    again = json.loads(json.dumps(d))
    assert again == d
    assert [o["name"] for o in again["outputs"]] == [t.name for t in m.outputs]
    assert again["inputs"][0]["shape"] == [1, 640, 640, 3]
    assert again["weight_granularity"] == "per-channel"
    assert again["total_param_bytes"] == m.total_param_bytes
    assert len(again["layers"]) == len(m.layers) and again["has_test_values"] is False


@pytest.mark.shared
def test_inspect_command_text_and_json(capsys):
    path = _ref("s3_v1")
    assert inspect_command(str(path), as_json=False) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "images" in out and "1x640x640x3" in out and "EDL2" in out
    for name in OUTPUT_NAMES:
        assert name in out
    assert "weights: per-tensor" in out and "test values: none embedded" in out

    assert inspect_command(str(path), as_json=True) == 0
    out, err = capsys.readouterr()
    d = json.loads(out)  # stdout is pure JSON: nothing else (such as esp-ppq's banner) is printed
    assert d["header"]["magic"] == "EDL2" and d["file_size"] == path.stat().st_size


# --- damaged and foreign files ------------------------------------------------------------------------------------
@pytest.mark.shared
def test_truncated_file(tmp_path):
    src = _ref("p4_v2")
    bad = _copy_with(src, tmp_path / "half.espdl", length=src.stat().st_size // 2)
    assert "is truncated" in _error(bad) and "payload" in _error(bad)
    tiny = _copy_with(src, tmp_path / "tiny.espdl", length=10)
    assert "is truncated" in _error(tiny) and "header" in _error(tiny)


@pytest.mark.shared
def test_wrong_magic(tmp_path):
    src = _ref("p4_v2")
    assert "is not an .espdl model" in _error(_copy_with(src, tmp_path / "x.espdl", {0: b"ONNX"}))
    assert "packed multi-model" in _error(_copy_with(src, tmp_path / "p.espdl", {0: b"PDL3"}))
    empty = tmp_path / "empty.espdl"
    empty.write_bytes(b"")
    assert "is not an .espdl model" in _error(empty)


@pytest.mark.shared
def test_encrypted_file_stops_with_no_partial_output(tmp_path, capsys):
    bad = _copy_with(_ref("s3_v2"), tmp_path / "enc.espdl", {4: struct.pack("<I", 1)})
    msg = _error(bad)
    assert "is encrypted (AES" in msg and "key" in msg

    assert inspect_command(str(bad), as_json=False) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"error: {bad} is encrypted")

    flag2 = _copy_with(_ref("s3_v2"), tmp_path / "flag2.espdl", {4: struct.pack("<I", 2)})
    assert "invalid encryption flag 2" in _error(flag2)


@pytest.mark.shared
def test_corrupt_payload_gives_clean_error(tmp_path, capsys):
    src = _ref("s3_v1")
    # Root table offset pointing far outside the payload.
    bad = _copy_with(src, tmp_path / "root.espdl", {16: b"\xff\xff\xff\x7f"})
    assert "has a corrupt FlatBuffers payload" in _error(bad)
    # The model table, its vtable and the graph's vectors live in the first few hundred bytes.
    bad = _copy_with(src, tmp_path / "tables.espdl", {20: b"\xff" * 400})
    assert "has a corrupt FlatBuffers payload" in _error(bad)
    assert inspect_command(str(bad), as_json=True) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"error: {bad} has a corrupt") and err.count("\n") == 1


@pytest.mark.shared
def test_random_damage_never_escapes_as_another_exception(tmp_path):
    """Whatever bytes are damaged, the reader returns a model or raises EspdlError (never hangs or crashes)."""
    src = _ref("s3_v1")
    data = src.read_bytes()
    rng = random.Random(1234)
    errors = 0
    for i in range(40):
        buf = bytearray(data)
        # Half of the hits land in the table area at the front, the rest anywhere in the payload.
        hi = 8192 if i % 2 == 0 else len(buf) - 32
        at = rng.randrange(16, hi)
        buf[at : at + 32] = bytes(rng.randrange(256) for _ in range(32))
        path = tmp_path / "fuzz.espdl"
        path.write_bytes(bytes(buf))
        try:
            read_espdl(path)
        except EspdlError as e:
            assert "\n" not in str(e) and "corrupt" in str(e).replace(str(path), "")
            errors += 1
    assert errors > 0  # damage in the tables is noticed at least sometimes


def test_missing_path_and_directory(tmp_path, capsys):
    assert "does not exist" in _error(tmp_path / "nope.espdl")
    assert "is not a file" in _error(tmp_path)
    assert inspect_command(str(tmp_path / "nope.espdl"), as_json=False) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and err.count("\n") == 1


# --- models built here with the espdl.fbs classes -----------------------------------------------------------------
def _dl(name: str):
    espdl._fbs()  # registers esp-ppq's generated package under its own name
    return importlib.import_module(f"FlatBuffers.Dl.{name}")


def _build_payload(*, per_channel: list[bool], test_values: bool, metadata: dict[str, str]) -> bytes:
    """A tiny espdl.Model: input x (1x8x8x3 int8) -> Conv_i ... -> y, one filter per entry of per_channel."""
    import flatbuffers

    T, VI, TI, TTS, TS, Dim, DV, N, G, M, SSE, AB = (
        _dl(n) for n in ("Tensor", "ValueInfo", "TypeInfo", "TensorTypeAndShape", "TensorShape", "Dimension",
                         "DimensionValue", "Node", "Graph", "Model", "StringStringEntry", "AlignedBytes")
    )
    TIV = _dl("TypeInfoValue").TypeInfoValue
    b = flatbuffers.Builder(1024)

    def strings(items, start):
        offs = [b.CreateString(s) for s in items]
        start(b, len(offs))
        for o in reversed(offs):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    def tables(offs, start):
        start(b, len(offs))
        for o in reversed(offs):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    def tensor(name, dtype, dims, exps, data: bytes):
        n = b.CreateString(name)
        d = b.CreateNumpyVector(np.array(dims, dtype=np.int64))
        e = b.CreateNumpyVector(np.array(exps, dtype=np.int64))
        blocks = [data[i : i + 16].ljust(16, b"\0") for i in range(0, len(data), 16)]
        T.TensorStartRawDataVector(b, len(blocks))
        for blk in reversed(blocks):
            AB.CreateAlignedBytes(b, blk)
        raw = b.EndVector()
        T.TensorStart(b)
        T.TensorAddName(b, n)
        T.TensorAddDims(b, d)
        T.TensorAddDataType(b, dtype)
        T.TensorAddExponents(b, e)
        T.TensorAddRawData(b, raw)
        return T.TensorEnd(b)

    def value_info(name, shape, exps):
        dims = []
        for v in shape:
            DV.DimensionValueStart(b)
            DV.DimensionValueAddDimType(b, 1)
            DV.DimensionValueAddDimValue(b, v)
            dv = DV.DimensionValueEnd(b)
            Dim.DimensionStart(b)
            Dim.DimensionAddValue(b, dv)
            dims.append(Dim.DimensionEnd(b))
        dimv = tables(dims, TS.TensorShapeStartDimVector)
        TS.TensorShapeStart(b)
        TS.TensorShapeAddDim(b, dimv)
        shp = TS.TensorShapeEnd(b)
        TTS.TensorTypeAndShapeStart(b)
        TTS.TensorTypeAndShapeAddElemType(b, 3)
        TTS.TensorTypeAndShapeAddShape(b, shp)
        tts = TTS.TensorTypeAndShapeEnd(b)
        TI.TypeInfoStart(b)
        TI.TypeInfoAddValueType(b, TIV.tensor_type)
        TI.TypeInfoAddValue(b, tts)
        ti = TI.TypeInfoEnd(b)
        n = b.CreateString(name)
        e = b.CreateNumpyVector(np.array(exps, dtype=np.int64))
        VI.ValueInfoStart(b)
        VI.ValueInfoAddName(b, n)
        VI.ValueInfoAddValueInfoType(b, ti)
        VI.ValueInfoAddExponents(b, e)
        return VI.ValueInfoEnd(b)

    inits, nodes, vis = [], [], []
    cin, cout, prev = 3, 4, "x"
    for i, pc in enumerate(per_channel):
        exps = list(range(-5, -5 - cout, -1)) if pc else [-6]
        inits.append(tensor(f"w{i}", 3, [1, 1, cin, cout], exps, bytes(range(cin * cout))))
        inits.append(tensor(f"b{i}", 6, [cout], [e - 7 for e in exps], bytes(4 * cout)))
        out = "y" if i == len(per_channel) - 1 else f"t{i}"
        ins = strings([prev, f"w{i}", f"b{i}"], N.NodeStartInputVector)
        outs = strings([out], N.NodeStartOutputVector)
        name, op = b.CreateString(f"conv{i}"), b.CreateString("Conv")
        N.NodeStart(b)
        N.NodeAddInput(b, ins)
        N.NodeAddOutput(b, outs)
        N.NodeAddName(b, name)
        N.NodeAddOpType(b, op)
        nodes.append(N.NodeEnd(b))
        if out != "y":
            vis.append(value_info(out, [1, 8, 8, cout], [-4]))
        prev, cin = out, cout
    g_in = [value_info("x", [1, 8, 8, 3], [-7])]
    g_out = [value_info("y", [1, 8, 8, cout], [-4])]
    t_in = [tensor("x", 3, [1, 8, 8, 3], [-7], bytes(192))] if test_values else []
    t_out = [tensor("y", 3, [1, 8, 8, cout], [-4], bytes(256))] if test_values else []

    vec = {
        "node": tables(nodes, G.GraphStartNodeVector),
        "init": tables(inits, G.GraphStartInitializerVector),
        "in": tables(g_in, G.GraphStartInputVector),
        "out": tables(g_out, G.GraphStartOutputVector),
        "vi": tables(vis, G.GraphStartValueInfoVector),
        "tin": tables(t_in, G.GraphStartTestInputsValueVector),
        "tout": tables(t_out, G.GraphStartTestOutputsValueVector),
    }
    gname = b.CreateString("tiny")
    G.GraphStart(b)
    G.GraphAddName(b, gname)
    G.GraphAddNode(b, vec["node"])
    G.GraphAddInitializer(b, vec["init"])
    G.GraphAddInput(b, vec["in"])
    G.GraphAddOutput(b, vec["out"])
    G.GraphAddValueInfo(b, vec["vi"])
    G.GraphAddTestInputsValue(b, vec["tin"])
    G.GraphAddTestOutputsValue(b, vec["tout"])
    graph = G.GraphEnd(b)
    entries = []
    for k, v in metadata.items():
        ko, vo = b.CreateString(k), b.CreateString(v)
        SSE.StringStringEntryStart(b)
        SSE.StringStringEntryAddKey(b, ko)
        SSE.StringStringEntryAddValue(b, vo)
        entries.append(SSE.StringStringEntryEnd(b))
    meta = tables(entries, M.ModelStartMetadataPropsVector)
    producer, doc = b.CreateString("unit-test"), b.CreateString("tiny model\nsecond line")
    M.ModelStart(b)
    M.ModelAddIrVersion(b, 7)
    M.ModelAddProducerName(b, producer)
    M.ModelAddDocString(b, doc)
    M.ModelAddGraph(b, graph)
    M.ModelAddMetadataProps(b, meta)
    b.Finish(M.ModelEnd(b))
    return bytes(b.Output())


def _write_model(path: Path, payload: bytes, magic: bytes = b"EDL2", tail: bytes = b"") -> Path:
    header = magic + struct.pack("<II", 0, len(payload)) + (b"\0" * 4 if magic == b"EDL2" else b"")
    path.write_bytes(header + payload + tail)
    return path


def test_built_model_metadata_and_test_values(tmp_path):
    payload = _build_payload(per_channel=[True], test_values=True, metadata={"target": "esp32p4", "imgsz": "8"})
    m = read_espdl(_write_model(tmp_path / "t.espdl", payload, tail=b"\0" * 5))
    assert m.trailing_bytes == 5 and m.header.payload_size == len(payload)
    assert m.producer_name == "unit-test" and m.ir_version == 7 and m.graph_name == "tiny"
    assert m.metadata_props == {"target": "esp32p4", "imgsz": "8"}
    assert m.has_test_values and m.test_inputs == ["x"] and m.test_outputs == ["y"]
    assert [(t.name, t.shape, t.exponents) for t in m.inputs] == [("x", [1, 8, 8, 3], [-7])]
    assert m.weight_granularity == "per-channel" and m.filters_per_channel == 1
    (layer,) = m.layers
    assert layer.op_type == "Conv" and layer.precision == "int8" and layer.params == ["w0", "b0"]
    assert layer.param_bytes == 3 * 4 * 1 + 4 * 4  # int8 filter + int32 bias
    text = format_text(m)
    assert "target: esp32p4" in text and "test values: embedded (1 inputs, 1 outputs)" in text
    assert "doc: tiny model" in text and "second line" not in text  # report lines stay single-line
    assert json.loads(json.dumps(to_json(m)))["metadata_props"]["imgsz"] == "8"


def test_built_model_mixed_and_per_tensor(tmp_path):
    mixed = read_espdl(_write_model(tmp_path / "m.espdl", _build_payload(
        per_channel=[True, False], test_values=False, metadata={})))
    assert mixed.weight_granularity == "mixed"
    assert (mixed.filters_per_channel, mixed.filters_per_tensor) == (1, 1)
    assert [layer.weights for layer in mixed.layers] == ["per-channel", "per-tensor"]
    assert "weights: mixed" in format_text(mixed) and not mixed.has_test_values

    pt = read_espdl(_write_model(tmp_path / "t.espdl", _build_payload(
        per_channel=[False, False], test_values=False, metadata={})))
    assert pt.weight_granularity == "per-tensor" and pt.filters_per_tensor == 2


def test_edl1_header_is_12_bytes(tmp_path):
    # ESP-DL's loader still accepts the older EDL1 container: same fields, no 4-byte pad before the payload.
    payload = _build_payload(per_channel=[False], test_values=False, metadata={})
    m = read_espdl(_write_model(tmp_path / "old.espdl", payload, magic=b"EDL1"))
    assert m.header.magic == "EDL1" and m.header.header_size == 12 and len(m.layers) == 1


def test_built_model_without_graph_is_corrupt(tmp_path):
    import flatbuffers

    M = _dl("Model")
    b = flatbuffers.Builder(64)
    M.ModelStart(b)
    M.ModelAddIrVersion(b, 7)
    b.Finish(M.ModelEnd(b))
    assert "corrupt FlatBuffers payload (the model has no graph)" in _error(
        _write_model(tmp_path / "nograph.espdl", bytes(b.Output())))
