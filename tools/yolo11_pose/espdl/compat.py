"""Which ESP-DL releases read a given `.espdl` file: its operators, their attributes and the file format.

The facts come from ESP-DL's own sources, one row per release tag, in `cfg/esp_dl_releases.json`
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

from yolo11_pose.util import UserError

TABLE_PATH = Path(__file__).resolve().parents[1] / "cfg" / "esp_dl_releases.json"
#: The component's dependency as idf_component.yml declares it, for an installed package without the checkout
#: (tests/test_compat.py checks that both agree).
DECLARED_ESP_DL = "^3.3.9"
_COMPONENT_YML = Path(__file__).resolve().parents[3] / "idf_component.yml"

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
    from yolo11_pose.espdl.reader import read_espdl

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
    from yolo11_pose.espdl.reader import read_espdl

    model = read_espdl(path)
    info = analyze(model)
    why = problem(info)
    if why:
        raise UserError(f"refusing to write the model: {why}; nothing was written (fix the export, or raise the "
                        "ESP-DL minimum in idf_component.yml if that release reads it)")
    unstable = [c for c in constructs(model) if c in UNSTABLE]
    if unstable:
        raise UserError(f"refusing to write the model: it carries {unstable[0]}, whose meaning in the ESP-DL releases "
                        f"after {table()['semantics']['newest_source']} that {info['declared']['range']} allows is "
                        "unknown; nothing was written")
    return {"oldest_reading_release": info["oldest"], "declared": info["declared"]["range"]}


# --- arithmetic per release --------------------------------------------------------------------------------------
_ACTIVATIONS = ("Swish", "Sigmoid")
#: Constructs whose meaning in releases after the newest source we hold is unknown: a file must not carry them.
UNSTABLE = ("int16 Swish/Sigmoid with a lut table", "int16 LUT node")


def constructs(model, target: str | None = None) -> dict[str, int]:
    """{construct of esp_dl_releases.json "semantics": how many nodes} for an espdl.EspdlModel."""
    params = {p.name: p for p in getattr(model, "params", [])}
    target = target or (getattr(model, "metadata_props", None) or {}).get("target")
    found: dict[str, int] = {}

    def add(k):
        found[k] = found.get(k, 0) + 1

    for layer in model.layers:
        qt = layer.attributes.get("quant_type")
        lut = isinstance(layer.attributes.get("lut"), str) and bool(layer.attributes.get("lut"))
        if layer.op_type in _ACTIVATIONS and qt == "S16":
            add("int16 Swish/Sigmoid with a lut table" if lut else "int16 Swish/Sigmoid without a table")
        elif layer.op_type in _ACTIVATIONS and qt == "S8" and lut:
            add("int8 Swish/Sigmoid with a lut table")
        elif layer.op_type == "LUT" and qt == "S16":
            add("int16 LUT node")
        elif layer.op_type == "Softmax" and qt == "S8":
            add("int8 Softmax")
        elif layer.op_type == "Conv":
            w = params.get(layer.inputs[1]) if len(layer.inputs) > 1 else None
            if target in (None, "esp32p4") and w is not None and len(w.exponents or []) > 1:
                add("ESP32-P4 per-channel Conv")
            if target in (None, "esp32s3"):
                add("ESP32-S3 int8 Conv accumulators" if qt == "S8" else "ESP32-S3 int16 Conv accumulators")
    return found


def _behaviour(rows: dict, version: str) -> str | None:
    for span, what in rows.items():
        if span == "later":
            continue
        lo, _, hi = span.partition("-")
        if _v(lo) <= _v(version) <= _v(hi or lo):
            return what
    return None


def arithmetic(model, verified: dict | None = None, target: str | None = None) -> dict:
    """What the file computes per ESP-DL range: the releases whose source we hold (same behaviour from the declared
    minimum up, or where it changes), and the later releases the declared range admits (known stable or unknown).
    ``verified``: coverage.unverified() of the file (None: not checked)."""
    sem = table()["semantics"]
    newest = sem["newest_source"]
    found = constructs(model, target)
    spec, _ = declared_range()
    minimum = range_minimum(spec)
    known = [v for v in table()["releases"] if _v(minimum) <= _v(v) <= _v(newest)]
    changes = []
    for c in found:
        rows = sem["constructs"][c]
        seen = {}
        for v in sorted(known, key=_v):
            seen.setdefault(_behaviour(rows, v), v)
        if len(seen) > 1:
            changes.append(f"{c} (changes at {', '.join(list(seen.values())[1:])})")
    unknown_later = [c for c in found if "unknown" in sem["constructs"][c].get("later", "")]
    return {"newest_source": newest, "declared": spec, "constructs": found,
            "known_range": f"{minimum}..{newest}" if known else None, "changes_within": changes,
            "later": "unknown" if unknown_later else "expected as " + newest, "unknown_later": unknown_later,
            "verified": None if verified is None else not verified,
            "unverified": sorted(verified or {})}


def arithmetic_lines(a: dict) -> list[str]:
    lines = [f"Arithmetic per ESP-DL release (component declares {a['declared']}):"]
    if a["known_range"]:
        same = ("the same in every one" if not a["changes_within"]
                else "CHANGES within it: " + "; ".join(a["changes_within"]))
        ver = ("" if a["verified"] is None else
               "; every operation verified against ESP-DL " + a["newest_source"] + "'s own outputs" if a["verified"]
               else f"; {len(a['unverified'])} operation kind(s) NOT covered by ESP-DL's outputs: "
                    + ", ".join(a["unverified"][:3]))
        lines.append(f"  {a['known_range']} (source read): known, {same}{ver}")
    later = f"after {a['newest_source']} (allowed by {a['declared']}, source not available): "
    if a["unknown_later"]:
        lines.append(later + "UNKNOWN: " + ", ".join(a["unknown_later"]) + " may compute differently")
    else:
        lines.append(later + f"no construct whose meaning depends on the release; expected as {a['newest_source']}, "
                     "not verified")
    for c, n in a["constructs"].items():
        lines.append(f"  {c} x{n}: {_behaviour(table()['semantics']['constructs'][c], a['newest_source'])}")
    return lines


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
                shown = a if s == since else f"{a} ({s})"
                # Swish/Sigmoid/... read `lut` for int8 nodes only; int16 nodes ignore it (esp_dl_releases "semantics")
                attrs.append(f"{shown} (int8 only)" if a == "lut" and op != "LUT" else shown)
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


__all__ = ["DECLARED_ESP_DL", "analyze", "arithmetic", "arithmetic_lines", "constructs", "analyze_file", "check_publishable", "declared_range", "format_lines",
           "problem", "range_minimum", "readable_by_declared", "table"]
