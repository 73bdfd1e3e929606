"""The `.espdl` container, at the level every reader shares: header sizes, esp-ppq's FlatBuffers classes for
espdl.fbs, the checked root table, and the one-line EspdlError.

espdl.py (the full reader), integrity.py (the embedded SHA-256) and executor.py build on it; it imports none of them.
"""
from __future__ import annotations

import importlib
import importlib.util
import struct
import sys
from pathlib import Path
from types import SimpleNamespace

from yolo11_pose.util import UserError


class EspdlError(UserError):
    """A file that cannot be inspected; the message is one line naming the problem and the fix."""


_HEADER_SIZE = {b"EDL2": 16, b"EDL1": 12}


# --- FlatBuffers classes --------------------------------------------------------------------------------------
_FBS: SimpleNamespace | None = None


def _fbs() -> SimpleNamespace:
    """The schema classes generated for espdl.fbs, taken from the installed esp-ppq.

    They are loaded from their files rather than through ``import esp_ppq...``: importing the esp_ppq package
    pulls in torch (seconds) and prints a banner on stdout, which would spoil ``inspect --json``. The generated
    modules refer to each other as the top-level package ``FlatBuffers`` (esp-ppq puts its parent folder on
    sys.path), so that is the name they are registered under; esp-ppq imported later reuses the same modules.
    """
    global _FBS
    if _FBS is not None:
        return _FBS
    fix = "install it with `pip install esp-ppq==1.3.12`"
    try:
        spec = importlib.util.find_spec("esp_ppq")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin:
        raise EspdlError(f"esp-ppq is not installed (its FlatBuffers classes read .espdl files); {fix}")
    pkg_dir = Path(spec.origin).parent / "parser" / "espdl" / "FlatBuffers"
    if not (pkg_dir / "Dl" / "Model.py").is_file():
        raise EspdlError(f"esp-ppq at {Path(spec.origin).parent} lacks parser/espdl/FlatBuffers/Dl; {fix}")
    existing = sys.modules.get("FlatBuffers")
    if existing is None:
        pkg_spec = importlib.util.spec_from_file_location(
            "FlatBuffers", pkg_dir / "__init__.py", submodule_search_locations=[str(pkg_dir)]
        )
        module = importlib.util.module_from_spec(pkg_spec)
        sys.modules["FlatBuffers"] = module
        pkg_spec.loader.exec_module(module)
    elif Path(getattr(existing, "__file__", "") or "").resolve().parent != pkg_dir.resolve():
        raise EspdlError(
            f"another Python package named FlatBuffers ({existing.__file__}) shadows esp-ppq's; "
            "run inspect in a fresh Python process"
        )
    mods = {
        n: importlib.import_module(f"FlatBuffers.Dl.{n}")
        for n in ("Model", "TensorTypeAndShape", "TypeInfoValue", "AttributeType", "DimensionValueType")
    }
    _FBS = SimpleNamespace(
        Model=mods["Model"].Model,
        TensorTypeAndShape=mods["TensorTypeAndShape"].TensorTypeAndShape,
        TypeInfoValue=mods["TypeInfoValue"].TypeInfoValue,
        AttributeType=mods["AttributeType"].AttributeType,
        DimensionValueType=mods["DimensionValueType"].DimensionValueType,
    )
    return _FBS


class _Corrupt(Exception):
    """Raised by the sanity checks below; turned into an EspdlError naming the file."""


def open_graph(payload, fbs):
    """The root Model and its Graph, after checking the root offset (the FlatBuffers runtime does not)."""
    buf_len = len(payload)
    if buf_len < 8:
        raise _Corrupt(f"payload of {buf_len} bytes is too small for a FlatBuffers table")
    root = struct.unpack_from("<I", payload, 0)[0]
    if root == 0 or root + 4 > buf_len:
        raise _Corrupt(f"root table offset {root} lies outside the {buf_len}-byte payload")
    m = fbs.Model.GetRootAs(payload, 0)
    g = m.Graph()
    if g is None:
        raise _Corrupt("the model has no graph")
    return m, g
