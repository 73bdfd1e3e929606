"""`yolo11-pose inspect`: the report on an `.espdl` file (text or JSON), put together from the reader (espdl.py),
the ESP-DL release analysis (compat.py) and the coverage gate (coverage.py, run on executor.py's graph)."""
from __future__ import annotations

import json
import sys
from dataclasses import asdict

from yolo11_pose.espdl import coverage
from yolo11_pose.espdl.compat import analyze, arithmetic, arithmetic_lines, format_lines
from yolo11_pose.espdl.reader import EspdlError, EspdlModel, EspdlTensor, read_espdl
from yolo11_pose.espdl.executor import ExecutorError, load_graph

__all__ = ["format_text", "to_json", "inspect_command", "head_summary", "weights_summary"]

_ENCRYPTION = {0: "none", 1: "AES-128-CTR"}


# --- reports --------------------------------------------------------------------------------------------------
def _shape_str(shape) -> str:
    return "?" if shape is None else "x".join(str(d) for d in shape)


def _exp_str(exps: list[int]) -> str:
    if not exps:
        return "-"
    if len(exps) == 1:
        return str(exps[0])
    return f"[{min(exps)}..{max(exps)}] x{len(exps)}"


def _mb(n: int) -> str:
    return f"{n:,} B ({n / 1e6:.2f} MB)"


def weights_summary(model: EspdlModel) -> str:
    g = model.weight_granularity
    if g == "per-channel":
        return (f"weights: per-channel ({model.filters_per_channel} filters with one exponent per output channel; "
                "esp32p4 style)")
    if g == "per-tensor":
        return (f"weights: per-tensor ({model.filters_per_tensor} filters with one exponent each; "
                "esp32s3 style, also older esp32p4 exports)")
    if g == "mixed":
        return (f"weights: mixed ({model.filters_per_channel} per-channel, "
                f"{model.filters_per_tensor} per-tensor filters)")
    return "weights: no convolution/gemm filters"


def head_summary(model: EspdlModel) -> tuple[dict | None, str]:
    """The file's head contract (head.py) as a dict and one line: from its ``head`` metadata, else derived for a file
    made before the contract (YOLO11's, when its outputs fit), else why none applies."""
    from yolo11_pose.device import head as heads

    shapes = {t.name: tuple(t.shape) for t in model.outputs if t.shape}
    has = heads.METADATA_KEY in model.metadata_props
    try:
        c = heads.from_metadata(model.metadata_props, shapes)
        in_shape = model.inputs[0].shape  # NHWC
        c.check_shapes(shapes, in_shape[2], in_shape[1])
    except (ValueError, IndexError, TypeError) as e:
        return None, f"head: none this component decodes ({e})"
    src = "from the file" if has else "none in the file; derived as for files made before the contract"
    return {**c.to_dict(), "kind": c.kind, "source": "metadata" if has else "derived"}, \
        f"head: {c.describe()} ({src})"


def format_text(model: EspdlModel) -> str:
    h = model.header
    lines = [
        f"file: {model.path}",
        f"  size {_mb(model.file_size)}; header {h.magic}, {h.header_size} bytes, "
        f"encryption {_ENCRYPTION.get(h.encrypted, h.encrypted)}, payload {h.payload_size:,} B"
        + (f", {model.trailing_bytes} trailing bytes" if model.trailing_bytes else ""),
        f"  integrity: {model.integrity}",
        f"model: graph '{model.graph_name}', ir_version {model.ir_version}"
        + (", opset " + ", ".join(f"{d or 'ai.onnx'}:{v}" for d, v in model.opset_import.items())
           if model.opset_import else "")
        + (f", producer {model.producer_name} {model.producer_version}".rstrip() if model.producer_name else ""),
    ]
    if model.doc_string:
        lines.append(f"  doc: {model.doc_string.splitlines()[0]}")
    for k, v in model.metadata_props.items():
        lines.append(f"  {k}: {v}")
    lines.append(head_summary(model)[1])

    def tensor_rows(title: str, tensors: list[EspdlTensor]) -> None:
        lines.append(f"{title} ({len(tensors)}):")
        w = max([len(t.name) for t in tensors] + [4])
        for t in tensors:
            lines.append(f"  {t.name:<{w}}  {_shape_str(t.shape):<14} {t.dtype:<7} exponent {_exp_str(t.exponents)}")

    tensor_rows("inputs (NHWC)", model.inputs)
    tensor_rows("outputs (NHWC)", model.outputs)

    lines.append(f"layers ({len(model.layers)}):")
    header = f"  {'#':>3}  {'op':<17} {'prec':<7} {'output':<14} {'exp':>4} {'params B':>9}  {'weights':<14} name"
    lines.append(header)
    for i, layer in enumerate(model.layers):
        exp = layer.output_exponents[0] if len(layer.output_exponents) == 1 else _exp_str(layer.output_exponents)
        lines.append(
            f"  {i:>3}  {layer.op_type:<17} {layer.precision:<7} {_shape_str(layer.output_shape):<14} {exp!s:>4} "
            f"{layer.param_bytes:>9,}  {layer.weights or '-':<14} {layer.name}"
        )
    by_dtype: dict[str, int] = {}
    for prm in model.params:
        by_dtype[prm.dtype] = by_dtype.get(prm.dtype, 0) + prm.nbytes
    ops = ", ".join(f"{op} {n}" for op, n in sorted(model.op_counts.items(), key=lambda kv: (-kv[1], kv[0])))
    lines += [
        f"ops: {ops}",
        f"parameters: {len(model.params)} tensors, {_mb(model.total_param_bytes)} "
        f"({', '.join(f'{d} {n:,}' for d, n in sorted(by_dtype.items()))}); "
        f"{model.total_stored_param_bytes:,} B stored with 16-byte alignment",
        weights_summary(model),
        "test values: " + (f"embedded ({len(model.test_inputs)} inputs, {len(model.test_outputs)} outputs)"
                           if model.has_test_values else "none embedded"),
    ]
    external = [prm.name for prm in model.params if prm.external]
    if external:
        lines.append(f"external data: {len(external)} parameters are stored outside this file")
    lines += format_lines(analyze(model))
    lines += arithmetic_lines(arithmetic(model, _unverified(model)))
    return "\n".join(lines)


def _unverified(model) -> dict | None:
    """The coverage gate's verdict on the file (coverage.py), or None when its chip is unknown or it cannot run."""
    try:
        g = load_graph(model.path)
        target = g.target or (model.metadata_props or {}).get("target")
        return coverage.unverified(g, target) if target else None
    except (ExecutorError, OSError, AttributeError):
        return None


def to_json(model: EspdlModel) -> dict:
    """A plain dict (only str/int/float/list/dict/None) that json.dumps accepts as is."""
    d = asdict(model)
    d["total_param_bytes"] = model.total_param_bytes
    d["total_stored_param_bytes"] = model.total_stored_param_bytes
    d["has_test_values"] = model.has_test_values
    d["weights_summary"] = weights_summary(model)
    d["head"] = head_summary(model)[0]
    d["esp_dl"] = analyze(model)  # operators, attributes and the oldest ESP-DL release that reads them all
    d["arithmetic"] = arithmetic(model, _unverified(model))  # per ESP-DL range: known, verified, stable
    return d


def inspect_command(path: str, as_json: bool) -> int:
    """``yolo11-pose inspect``: print the report (or JSON) and return the exit code (2 when the file is unusable)."""
    try:
        model = read_espdl(path)
    except EspdlError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(to_json(model), indent=2))
    else:
        print(format_text(model))
    return 0
