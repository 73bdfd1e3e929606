"""Which ESP-DL releases read a given `.espdl` file: its operators, their attributes and the file format.

The facts come from ESP-DL's own sources, one row per release tag, in `esp_dl_releases.json` beside this module
(made once from the espressif/esp-dl tags with `git show`; see its "about"). A release *reads* a file when its loader
accepts the file's magic, its module creator registers every operator, and each operator's deserializer reads every
attribute the file gives it. Two kinds of attribute are not read by any known release:

- attributes of the ONNX operator of that name (Conv `kernel_shape`, MaxPool `ceil_mode`, ...): every release ignores
  them and behaves the same whatever their value, so they decide nothing here and are only listed;
- ESP-PPQ extensions that repeat what ESP-DL derives by itself (``REDUNDANT``): LUT ``int16_lut_step`` (ESP-DL takes
  the step from the table's length, ``65536 / (size - 1)`` in dl_module_lut.hpp) and ``original_op_type`` (a label).
  Ignoring them changes nothing as long as they agree with the file, which is checked per node;
- anything else (ESP-PPQ 1.3.12's MatMul `input1_layout`): an extension that changes what the operator means, which
  no known release honours. A file carrying one is read by "no known release".

`quantize`/`build` refuse to publish a file that the ESP-DL range the component declares (idf_component.yml) cannot
read: no known release, or an oldest reading release above the range's minimum.
"""
from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from .util import UserError

TABLE_PATH = Path(__file__).with_name("esp_dl_releases.json")
#: The component's dependency as idf_component.yml declares it, for an installed package without the checkout
#: (tests/test_compat.py checks that both agree).
DECLARED_ESP_DL = "^3.3.9"
_COMPONENT_YML = Path(__file__).resolve().parents[2] / "idf_component.yml"

Version = tuple[int, ...]


def _v(s: str) -> Version:
    return tuple(int(p) for p in s.split("."))


@functools.lru_cache(maxsize=1)
def table() -> dict:
    return json.loads(TABLE_PATH.read_text())


def newest_known() -> str:
    return max(table()["releases"], key=_v)


# --- the declared range -----------------------------------------------------------------------------------------
def declared_range(component_yml: str | Path | None = None) -> tuple[str, str]:
    """(ESP-DL version range, where it came from): the checkout's idf_component.yml, else the packaged constant."""
    p = Path(component_yml) if component_yml else _COMPONENT_YML
    if p.is_file():
        import yaml

        deps = (yaml.safe_load(p.read_text()) or {}).get("dependencies") or {}
        dep = deps.get("espressif/esp-dl")
        spec = dep.get("version") if isinstance(dep, dict) else dep
        if spec:
            return str(spec), str(p)
    return DECLARED_ESP_DL, "packaged default"


def range_minimum(spec: str) -> str:
    """The lowest version a component-manager range allows: ^X.Y.Z, ~X.Y.Z, >=, >, ==, = or a bare version,
    several separated by commas (their highest lower bound). `*` or upper bounds only: 0.0.0."""
    lows = []
    for part in re.split(r"[,\s]+(?=[\^~<>=!*\d])", re.sub(r"([\^~<>=!])\s+", r"\1", spec.strip())):
        part = part.strip()
        m = re.fullmatch(r"(\^|~=?|>=|>|==|=)?\s*v?(\d+(?:\.\d+){0,2})(?:[-+][\w.]*)?", part)
        if m:
            lows.append(_v(m.group(2)) + (0,) * (3 - len(_v(m.group(2)))))
        elif not re.fullmatch(r"\*|<=?\s*v?[\d.]+(?:[-+][\w.]*)?|!=\s*v?[\d.]+", part):
            raise UserError(f"cannot read ESP-DL version range {spec!r}; write it as ^X.Y.Z or >=X.Y.Z in "
                            "idf_component.yml")
    return ".".join(map(str, max(lows))) if lows else "0.0.0"


# --- analysis ---------------------------------------------------------------------------------------------------
def _lut_step_agrees(layer, params: dict) -> bool:
    table = params.get(str(layer.attributes.get("lut", "")))
    step = layer.attributes.get("int16_lut_step")
    if table is None or not table.dims or not isinstance(step, int):
        return False
    size = 1
    for d in table.dims:
        size *= int(d)
    return size > 1 and 65536 % (size - 1) == 0 and 65536 // (size - 1) == step


#: (operator, attribute) -> check that ignoring it is harmless for this node (see the module docstring).
REDUNDANT = {("LUT", "int16_lut_step"): _lut_step_agrees, ("LUT", "original_op_type"): lambda layer, params: True}


def analyze(model) -> dict:
    """What `model` (an espdl.EspdlModel) uses and the oldest known ESP-DL release that reads all of it."""
    tab = table()
    newest = newest_known()
    ops: dict[str, dict] = {}
    params = {p.name: p for p in getattr(model, "params", [])}
    redundant_bad = set()
    for layer in model.layers:
        e = ops.setdefault(layer.op_type, {"count": 0, "attrs": set()})
        e["count"] += 1
        e["attrs"].update(layer.attributes)
        for a in layer.attributes:
            check = REDUNDANT.get((layer.op_type, a))
            if check is not None and not check(layer, params):
                redundant_bad.add((layer.op_type, a))
    needs: list[tuple[str, str | None]] = []  # (what, first release reading it; None: no known release)
    magic = model.header.magic
    needs.append((f"format {magic}", tab["formats"].get(magic)))
    operators, ignored, unread = {}, [], []
    for op in sorted(ops):
        row = tab["operators"].get(op)
        since = row["since"] if row else None
        needs.append((f"operator {op}", since))
        attrs = {}
        for a in sorted(ops[op]["attrs"]):
            if row and a in row["attributes"]:
                attrs[a] = row["attributes"][a]
                if attrs[a] != since:  # read since the operator exists: the operator says it
                    needs.append((f"{op}.{a}", attrs[a]))
            elif row and a in row.get("ignored_onnx_attributes", ()):
                attrs[a] = "ignored"
                ignored.append(f"{op}.{a}")
            elif row and (op, a) in REDUNDANT and (op, a) not in redundant_bad:
                attrs[a] = "ignored"  # ESP-DL derives the same thing itself
                ignored.append(f"{op}.{a}")
            else:
                attrs[a] = None
                if row:  # an unregistered operator is reported once, as the operator
                    needs.append((f"{op}.{a}", None))
                    unread.append(f"{op}.{a}")
        operators[op] = {"count": ops[op]["count"], "since": since, "attributes": attrs}
    missing = [w for w, s in needs if s is None]
    oldest = None if missing else max((s for _, s in needs), key=_v)
    spec, source = declared_range()
    minimum = range_minimum(spec)
    return {
        "table": {"releases": f"{min(tab['releases'], key=_v)}..{newest}", "esp_dl_commit": tab["releases"][newest]},
        "format": {"magic": magic, "since": tab["formats"].get(magic)},
        "operators": operators,
        "oldest": oldest,
        "decided_by": [w for w, s in needs if s is not None and s == oldest and oldest != "3.0.0"],
        "unreadable": missing,  # nothing any known release reads (an operator, an attribute, the format)
        "unread_attributes": unread,
        "ignored_attributes": ignored,
        "declared": {"range": spec, "source": source, "minimum": minimum,
                     "reads": oldest is not None and _v(oldest) <= _v(minimum)},
    }


def analyze_file(path: str | Path) -> dict:
    from .espdl import read_espdl

    return analyze(read_espdl(path))


def problem(info: dict) -> str | None:
    """One line saying why the declared ESP-DL range cannot read the file, or None when it can."""
    d = info["declared"]
    if d["reads"]:
        return None
    rng = f"espressif/esp-dl {d['range']} ({d['source']})"
    if info["unreadable"]:
        what = ", ".join(info["unreadable"])
        return (f"it uses {what}, which no known ESP-DL release (up to {newest_known()}) reads, and the component "
                f"declares {rng}")
    return (f"it needs ESP-DL {info['oldest']} or newer (for {', '.join(info['decided_by'])}), but the component "
            f"declares {rng}, from {d['minimum']}")


def readable_by_declared(path: str | Path) -> bool:
    """Whether the declared ESP-DL range reads this file (False also for a file that cannot be parsed)."""
    try:
        return problem(analyze_file(path)) is None
    except UserError:
        return False


def check_publishable(path: str | Path) -> dict:
    """Refuse (UserError) a freshly written `.espdl` the declared ESP-DL range cannot read; else the summary that the
    manifest records."""
    info = analyze_file(path)
    why = problem(info)
    if why:
        raise UserError(f"refusing to write the model: {why}; nothing was written (fix the export, or raise the "
                        "ESP-DL minimum in idf_component.yml if that release reads it)")
    return {"oldest_reading_release": info["oldest"], "declared": info["declared"]["range"]}


# --- report -----------------------------------------------------------------------------------------------------
def format_lines(info: dict) -> list[str]:
    """The `yolo11-pose inspect` section."""
    t = info["table"]
    lines = [f"ESP-DL compatibility (from ESP-DL's sources, releases {t['releases']}):",
             f"  format {info['format']['magic']}: since {info['format']['since'] or 'no known release'}"]
    w = max([len(op) for op in info["operators"]] + [8])
    for op, e in info["operators"].items():
        since = e["since"]
        attrs = []
        for a, s in e["attributes"].items():
            if s is None:
                attrs.append(f"{a} (read by no known release)")
            elif s == "ignored":
                attrs.append(f"{a} (ignored)")
            else:
                attrs.append(a if s == since else f"{a} ({s})")
        lines.append(f"  {op:<{w}} x{e['count']:<4} since {since or 'no known release':<8} "
                     f"{', '.join(attrs) or '-'}")
    if info["ignored_attributes"]:
        lines.append("  ignored: ONNX attributes that no ESP-DL release reads (each behaves the same whatever their "
                     "value)")
    if info["oldest"]:
        by = f" (for {', '.join(info['decided_by'])})" if info["decided_by"] else ""
        lines.append(f"  oldest ESP-DL that reads it all: {info['oldest']}{by}")
    else:
        lines.append(f"  oldest ESP-DL that reads it all: none known: no release up to {newest_known()} reads "
                     f"{', '.join(info['unreadable'])}")
    d = info["declared"]
    lines.append(f"  component declares espressif/esp-dl {d['range']} ({d['source']}): "
                 + ("reads it" if d["reads"] else "CANNOT read it"))
    return lines


__all__ = ["DECLARED_ESP_DL", "analyze", "analyze_file", "check_publishable", "declared_range", "format_lines",
           "problem", "range_minimum", "readable_by_declared", "table"]
