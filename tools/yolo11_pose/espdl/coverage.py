"""Which arithmetic of a `.espdl` file ESP-DL's own outputs have proven the executor right on.

Every node of a file has a *signature*: the chip's rounding family, the operator, the dtypes it reads and writes and
the attributes that change its arithmetic (a per-channel or depthwise filter, a fused activation, a lookup table, a
shift direction, mismatched exponents...). Shapes, strides and paddings only move the same arithmetic around.

``cfg/verified_ops.json`` lists every signature that occurs in a file whose outputs ESP-DL's own kernels computed
(`shared/data/espdl-outputs`: Espressif's four int8 files, every output value; `shared/data/espdl-outputs-mixed`:
three int8+int16 files and one int8 file, every node's SHA-256) and that the executor reproduces exactly; it is made
from those files by :func:`derive` and tests/test_coverage.py checks that it is exactly that. The executor and
`build` refuse a file with a signature outside it (one line naming it) unless the user opts in
(``--allow-unverified-ops``): the executor would be the only witness of what the chip computes there.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

from yolo11_pose.util import UserError

VERIFIED_PATH = Path(__file__).resolve().parents[1] / "cfg" / "verified_ops.json"
_FAMILY = {"esp32p4": "p4", "esp32s3": "s3"}  # the rounding rule (and the kernels) each chip runs
OPT_IN = "--allow-unverified-ops"


#: The opt-in, for every executor and build of this process (the CLI flag sets it; so can the environment).
ENV = "YOLO11_POSE_ALLOW_UNVERIFIED_OPS"


def allowed() -> bool:
    import os

    return os.environ.get(ENV, "") not in ("", "0")


#: Operators whose ESP-DL kernels never round (copies, integer adds with saturation, maxima, nearest resizing):
#: what one chip's rounding rule verified holds for the other.
_NO_ROUNDING = {"Concat", "Split", "Slice", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "MaxPool",
                "Add"}


#: Operators that move values without computing (ESP-PPQ's PASSIVE_OPERATIONS that our exports contain, and Resize)
_PASSIVE = {"Split", "Slice", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "MaxPool", "Resize", "Pad",
            "Gather"}


class UnverifiedError(UserError):
    """A file uses arithmetic no ESP-DL output covers."""


def _dtype(graph, name: str) -> str:
    if name in graph.consts:
        return str(graph.consts[name].value.dtype)
    return str(graph.info.get(name, (None, "?", None))[1] or "?")


def _exps(graph, name: str) -> list[int]:
    if name in graph.consts:
        return list(graph.consts[name].exponents)
    return list(graph.info.get(name, (None, None, []))[2] or [])


def node_signature(graph, nd, target: str) -> str:
    """One line: ``s3 Conv in=int8,int8w out=int8 activation=Linear bias depthwise per_channel``."""
    ins = [n for n in nd.inputs if n]
    acts = [n for n in ins if n not in graph.consts]
    consts = [n for n in ins if n in graph.consts]
    dt_in = [_dtype(graph, n) for n in acts]
    attrs: list[str] = []
    if nd.op in ("Conv", "MatMul"):
        if nd.op == "Conv" and len(ins) > 1:
            w = ins[1]
            dt_in.append(_dtype(graph, w) + "w")
            if len(_exps(graph, w)) > 1:
                attrs.append("per_channel")
            if int(nd.attrs.get("group", 1) or 1) > 1:
                attrs.append("depthwise")
            if len(ins) > 2:
                attrs.append("bias")
        elif nd.op == "MatMul":
            dt_in += [_dtype(graph, n) + "w" for n in consts]
            if "input1_layout" in nd.attrs:
                attrs.append(f"input1_layout={nd.attrs['input1_layout']}")
        attrs.append(f"activation={nd.attrs.get('activation') or 'Linear'}")
    elif nd.op in ("Swish", "Sigmoid", "LUT", "Tanh", "Relu", "LeakyRelu", "HardSwish", "HardSigmoid", "Exp",
                   "Log", "Elu", "Gelu", "Clip", "PRelu", "Sqrt"):
        has_table = isinstance(nd.attrs.get("lut"), str) and bool(nd.attrs.get("lut"))
        if nd.op != "LUT" and dt_in and dt_in[0] == "int16":
            # dl_module_swish.hpp / dl_module_sigmoid.hpp (3.3.9) deserialize: int16 never reads the table; the
            # float path runs either way (whether a later release reads it is compat.py's version question)
            attrs.append("float_path")
        else:
            attrs.append("table" if has_table else "no_table")
    elif nd.op in ("RequantizeLinear", "QuantizeLinear", "DequantizeLinear") and acts and nd.outputs:
        ei, eo = _exps(graph, acts[0]), _exps(graph, nd.outputs[0])
        if dt_in[0].startswith("float") or _dtype(graph, nd.outputs[0]).startswith("float"):
            attrs.append("float_conversion")  # rounds (or scales) in float: the chip's rule decides
        elif ei and eo:
            attrs.append("shift=" + ("same" if ei[0] == eo[0] else "down" if eo[0] > ei[0] else "up"))
    elif nd.op in ("Add", "Concat", "Mul") and acts and nd.outputs:
        if nd.op != "Mul":  # Add/Concat copy or add raw integers (c_impl_add_n_n): exponents must agree
            es = {tuple(_exps(graph, n)) for n in (*acts, nd.outputs[0])}
            attrs.append("aligned" if len(es) == 1 else "exponents_differ")
        if consts:
            attrs.append("const_operand")
    elif nd.op == "Resize":
        attrs.append(f"mode={nd.attrs.get('mode', 'nearest')}")
    if nd.op in _PASSIVE and acts and nd.outputs:
        # ESP-DL's passive modules move integers as they are: an output exponent other than the input's is a value
        # the chip does not compute (ESP-PPQ wrote one after int16 layers, ppq_env._align_passive_ops)
        es = {tuple(_exps(graph, n)) for n in (acts[0], *[o for o in nd.outputs if o])}
        attrs.append("aligned" if len(es) == 1 else "exponents_differ")
    dt_out = [_dtype(graph, n) for n in nd.outputs if n]
    fam = _FAMILY.get(target, target)
    if nd.op in _NO_ROUNDING or any(a in ("shift=same", "shift=up") for a in attrs):
        fam = "any"  # the archives' p4/s3 differ only in the rounding rule (CONFIG_ROUND_HALF_EVEN_ENABLED)
    text = f"{fam} {nd.op} in={','.join(dt_in) or '-'} out={','.join(dt_out) or '-'}"
    return text + (" " + " ".join(attrs) if attrs else "")


def signatures(graph, target: str | None = None) -> dict[str, list[str]]:
    """{signature: [node names]} of an EspdlGraph (executor.load_graph)."""
    target = target or graph.target
    out: dict[str, list[str]] = {}
    for nd in graph.nodes:
        out.setdefault(node_signature(graph, nd, target), []).append(nd.name)
    return out


@functools.lru_cache(maxsize=1)
def verified() -> dict:
    """The committed list: {"espdl": version, "signatures": {signature: [evidence archives]}}."""
    return json.loads(VERIFIED_PATH.read_text())


def unverified(graph, target: str | None = None) -> dict[str, list[str]]:
    known = verified()["signatures"]
    return {s: nodes for s, nodes in signatures(graph, target).items() if s not in known}


def check(graph, target: str | None = None, allow: bool | None = None, what: str = "run") -> dict[str, list[str]]:
    """Raise UnverifiedError naming the first unverified signature (unless ``allow``; None: the process's opt-in,
    :func:`allowed`); return them all."""
    allow = allowed() if allow is None else allow
    missing = unverified(graph, target)
    if missing and not allow:
        sig, nodes = next(iter(missing.items()))
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise UnverifiedError(
            f"{Path(graph.path).name}: node {nodes[0]!r} computes `{sig}`{more}, which no output of ESP-DL's own "
            f"kernels covers, so what the chip computes there is unproven; pass {OPT_IN} to {what} it anyway")
    return missing


def precheck_int16(onnx_op_types, target: str, allow: bool | None = None) -> None:
    """Before a --bits 16 quantization (minutes): every operator of the ONNX runs in int16 there; refuse at once when
    the verified list holds no int16 form of one of them (the full check runs on the written file anyway)."""
    if allowed() if allow is None else allow:
        return
    fam = _FAMILY.get(target, target)
    have = {s.split()[1] for s in verified()["signatures"] if s.split()[0] in (fam, "any") and "int16" in s.split()[2]}
    for op in sorted(set(onnx_op_types)):
        if op in ("Add", "Concat", "MaxPool", "Resize", "Softmax", "Split", "Mul") and op not in have:
            raise UnverifiedError(f"--bits 16 runs {op} in int16, which no output of ESP-DL's own kernels covers "
                                  f"({VERIFIED_PATH.name}), so what the chip computes there is unproven; use --bits 8 "
                                  f"with --int16-layers or --int16-budget, or pass {OPT_IN}")


def derive(references: list[tuple[str | Path, str, str]], load_graph, espdl_version: str) -> dict:
    """The verified list from reference files: [(model path, target, evidence label)] (``load_graph``: the
    executor's reader, passed in so that this module imports nothing of the executor)."""
    sigs: dict[str, set] = {}
    for path, target, label in references:
        for s in signatures(load_graph(path), target):
            sigs.setdefault(s, set()).add(label)
    return {"about": "Signatures (chip family, operator, dtypes in/out, arithmetic attributes) of every node of the "
                     "files whose outputs ESP-DL's own kernels computed and the executor reproduces exactly. Made by "
                     "yolo11_pose.espdl.coverage.derive from ../shared (tests/test_coverage.py); do not edit by hand.",
            "espdl": espdl_version,
            "signatures": {s: sorted(v) for s, v in sorted(sigs.items())}}


def reference_files(shared: str | Path) -> list[tuple[Path, str, str]]:
    """The reference models in a ``shared`` folder, with their chip and the archive folder that holds their outputs."""
    shared = Path(shared)
    refs = []
    for chip in ("p4", "s3"):
        for v in ("v1", "v2"):
            refs.append((shared / "models" / "espdl-reference" / chip / f"coco_pose_yolo11n_pose_s8_{v}.espdl",
                         f"esp32{chip}", f"espdl-outputs/{chip}_{v}"))
    man = json.loads((shared / "data" / "espdl-outputs-mixed" / "manifest.json").read_text())
    for e in {e["model"].rsplit("/", 1)[-1]: e for e in man}.values():
        model = e["model"].rsplit("/", 1)[-1]
        refs.append((shared / "models" / "espdl-mixed" / model, f"esp32{e['chip']}",
                     f"espdl-outputs-mixed/{model.removesuffix('.espdl')}"))
    return refs


if __name__ == "__main__":  # python -m yolo11_pose.espdl.coverage SHARED: rewrite cfg/verified_ops.json
    import sys

    from yolo11_pose.util import write_json

    from yolo11_pose.espdl.executor import ESPDL_VERSION, load_graph

    data = derive(reference_files(sys.argv[1] if len(sys.argv) > 1 else "../shared"), load_graph, ESPDL_VERSION)
    write_json(VERIFIED_PATH, data)
    print(f"{len(data['signatures'])} signatures -> {VERIFIED_PATH}")
