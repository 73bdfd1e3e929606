"""ESP-PPQ in this process: the one release our export fixes are written for, imported once, its log kept quiet.

Shared by quantize.py and recipe.py (and anything else that runs ESP-PPQ), so that neither imports the other.
"""
from __future__ import annotations

import contextlib
import io
import os
import tempfile

from yolo11_pose.progress import PhaseMonitor
from yolo11_pose.util import UserError

#: The ESP-PPQ release whose code `espdl_export_fixes` patches; any other is refused (pyproject pins it too).
ESPPPQ_VERSION = "1.3.12"


def check_ppq_version() -> None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("esp-ppq")
    except PackageNotFoundError:
        found = None
    if found != ESPPPQ_VERSION:
        raise UserError(f"esp-ppq {found or 'is not installed'}{' is installed' if found else ''}, but yolo11-pose's "
                        f"export fixes are written for esp-ppq {ESPPPQ_VERSION}; run "
                        f"`python -m pip install esp-ppq=={ESPPPQ_VERSION}`")


@contextlib.contextmanager
def _quiet(verbose: bool, progress: str | None = None):
    """ESP-PPQ logs hundreds of lines through handles it captured at import: silence fds 1 and 2 unless --verbose.

    What it printed is replayed when the block fails, so an ESP-PPQ error is never hidden. With ``progress`` (a
    title), the phase ESP-PPQ is in is shown on the real stderr meanwhile (progress.PhaseMonitor).
    """
    if verbose:
        yield
        return
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        ok = False
        text = io.StringIO()  # ESP-PPQ's prints and progress bars, in order, for the phase monitor
        monitor = PhaseMonitor(text.getvalue, saved[1], progress) if progress else contextlib.nullcontext()
        try:
            with monitor, contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
                yield
            ok = True
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            if not ok:
                log.seek(0)
                tail = log.read()[-4000:].decode(errors="replace") + text.getvalue()[-4000:]
                if tail.strip():
                    print(tail, file=sys.stderr)


def import_ppq() -> None:
    """Import ESP-PPQ once with its banner silenced (it prints to stdout, which would spoil --json output)."""
    import sys

    if "esp_ppq" not in sys.modules:
        with _quiet(False):
            import esp_ppq  # noqa: F401
    from yolo11_pose.make.chipsim import install

    install()  # ESP-PPQ's simulation computes what ESP-DL computes (calibration, ranking, fine-tuning, the twin)
    _align_passive_ops()


_ALIGNED = "__yolo11_pose_passive_aligned__"


def _align_passive_ops() -> None:
    """Every passive op (Slice, Split, Reshape, Transpose, MaxPool, ...) gets its input's exponent on its outputs.

    ESP-DL moves the integers as they are: dl_module_slice.hpp's forward is ``output->slice(input, ...)``, and
    ``TensorBase::slice`` (dl_tensor_base.cpp) is ``tool::copy_memory`` of the selected rows, with no exponent in
    sight. The reference archives hold only passive ops whose exponents agree (coverage.py: ``aligned``), so the file
    is only right, and only proven, when a passive op's output exponent is its input's. ESP-PPQ 1.3.12's
    QuantizeFusionPass (``fuse_passive_op``) ties them only when the op and the op before it are on the same platform:
    an int8 Slice after an int16 layer got an output exponent calibrated on its own. Found in an ESP32-S3 416 build
    with 30 % int16: ``/model.13/Slice_1`` read at 2**-4 and wrote at 2**-5, so the chip halved that half of the C2f
    split (0.418 AP in ESP-PPQ's simulation on 46 images, 0.251 as ESP-DL computes it). Patched once per process:
    after the pass, the outputs of every such op are dominated by its input's config, whatever the platforms."""
    from esp_ppq.core import PASSIVE_OPERATIONS
    from esp_ppq.IR import QuantableOperation
    from esp_ppq.quantization.optim.refine import QuantizeFusionPass

    if getattr(QuantizeFusionPass.optimize, _ALIGNED, False):
        return
    optimize = QuantizeFusionPass.optimize

    def aligned(self, graph, **kwargs):
        optimize(self, graph, **kwargs)
        if not getattr(self, "fuse_passive_op", True):
            return
        for op in graph.operations.values():
            if op.type in PASSIVE_OPERATIONS and isinstance(op, QuantableOperation) and op.inputs \
                    and op.inputs[0].source_op is not None:
                for cfg in op.config.output_quantization_config:
                    cfg.dominated_by = op.config.input_quantization_config[0]

    setattr(aligned, _ALIGNED, True)
    QuantizeFusionPass.optimize = aligned


__all__ = ["ESPPPQ_VERSION", "check_ppq_version", "import_ppq", "_quiet"]


# ----------------------------------------------------------------------------------------------- ESP-PPQ export fixes
# Any activation name but Linear/Relu makes ESP-PPQ 1.3.12 skip its "native_kn" branch (see below).
_TAKE_PACKED_BRANCH = "__yolo11_pose_packed__"


@contextlib.contextmanager
def espdl_export_fixes(packed_matmul: bool = True):
    """Scoped fixes of ESP-PPQ 1.3.12, undone on exit, so the `.espdl` is one ESP-DL 3.3.9 reads right and every
    output (`.espdl`, `model.native`, `model.json`) is the same bytes on every run.

    1. Dynamic MatMul operands (YOLO11's attention `/model.10/m/m.0/attn/MatMul`, `MatMul_1`). ESP-PPQ 1.3.12's
       `InsertPreNodeOfMatMulPattern.export` marks them `input1_layout = "native_kn"` and leaves the operand as it is;
       ESP-DL 3.3.9 never reads that attribute (dl_module_matmul.hpp: deserialize reads only `activation` and
       `quant_type`) and always runs MatMul as a 1x1 conv2d whose filter is the right operand, *packed*:
       dl_base.hpp ArgsType / dl_base_conv2d: for K x N (HWIO 1x1xKxN) with u = 16 (int8) or 8 (int16) lanes, the
       first N//u*u output channels are stored as N//u blocks of K x u (element (k, n) at ((n//u)*K + k)*u + n%u), the
       N%u remaining channels after them as N%u rows of K (`filter_element_unaligned`). ESP-PPQ still has the graph
       that packs a dynamic operand at run time (Reshape/Transpose, plus Slice/Concat when N%u != 0; what ESP-PPQ
       1.3.5 always wrote); it runs when the MatMul's activation is not Linear/Relu, so we hide the activation for
       the duration of the call. The attribute is dropped for every MatMul: ESP-DL 3.3.9 reads none, and newer
       ESP-DL treats a file without it as packed (ESP-PPQ 1.3.12's own comment), which is what we write.
    2. `OnnxParser.build_variables` creates the graph's variables by iterating a set of names, so their order, and
       with it the order of initializers, the numbering of later `PPQ_Variable_N` and the alignment padding, follow
       PYTHONHASHSEED. We restore graph order (first use by the ONNX nodes), which makes the export byte-stable.
    3. Every TensorQuantizationConfig gets a "hash" (its identity, pickled into model.native and written to
       model.json) from a generator seeded with the import time: we seed it with a constant.
    4. The dummy input ESP-PPQ draws with torch.randn (shape tracing; the test values with --export-test-values):
       drawn from a fixed seed on a forked RNG, so the caller's random state is untouched.
    5. torch's thread count changes the float sums of the calibration pass by an ulp here and there (measured: 1 vs 2
       threads, one KL threshold moved a power of two), and it follows the machine and OMP_NUM_THREADS (which
       importing Ultralytics sets): one thread, restored on exit.

    `packed_matmul=False` leaves fix 1 out (what ESP-PPQ alone writes): only for the tests of the refusal.
    """
    check_ppq_version()
    import_ppq()
    import torch
    from esp_ppq.core.quant import TensorQuantizationConfig
    from esp_ppq.parser.espdl.export_patterns import InsertPreNodeOfMatMulPattern
    from esp_ppq.parser.onnx_parser import OnnxParser

    matmul_export = InsertPreNodeOfMatMulPattern.export
    build_variables = OnnxParser.build_variables

    def packed_matmul_export(self, op, graph, **kwargs):
        if op.type != "MatMul":
            return matmul_export(self, op, graph, **kwargs)
        attrs = op.attributes
        had, act = "activation" in attrs, attrs.get("activation")
        if not op.inputs[1].is_parameter:
            attrs["activation"] = _TAKE_PACKED_BRANCH
        try:
            return matmul_export(self, op, graph, **kwargs)
        finally:
            if had:
                attrs["activation"] = act
            else:
                attrs.pop("activation", None)
            attrs.pop("input1_layout", None)

    def ordered_build_variables(self, graph, graph_inputs, graph_outputs, op_inputs, op_outputs):
        graph = build_variables(self, graph, graph_inputs, graph_outputs, op_inputs, op_outputs)
        first_use = dict.fromkeys(n for op in graph.operations for n in (*op_inputs[op], *op_outputs[op]))
        ordered = {n: graph.variables[n] for n in first_use if n in graph.variables}
        ordered.update(graph.variables)  # anything not used by a node keeps its place after those
        graph.variables.clear()
        graph.variables.update(ordered)
        return graph

    hash_seed, threads = TensorQuantizationConfig._hash_seed, torch.get_num_threads()
    if packed_matmul:
        InsertPreNodeOfMatMulPattern.export = packed_matmul_export
    OnnxParser.build_variables = ordered_build_variables
    TensorQuantizationConfig._hash_seed = 0
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            yield
    finally:
        InsertPreNodeOfMatMulPattern.export = matmul_export
        OnnxParser.build_variables = build_variables
        TensorQuantizationConfig._hash_seed = hash_seed
        torch.set_num_threads(threads)
