"""Defaults and limits, read from default.yaml beside this file (their one owner; see its header)."""
from __future__ import annotations

from pathlib import Path

DEFAULT_YAML = Path(__file__).with_name("default.yaml")


def _scalar(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse(text: str, source: str | Path = DEFAULT_YAML) -> dict:
    """The flat `key: value  # comment` subset of YAML that default.yaml keeps to.

    Read with the standard library: the CMake hook's interpreter check imports this package before it knows whether
    PyYAML is installed (tests/test_defaults.py checks that PyYAML reads the file the same way).
    """
    out = {}
    for n, line in enumerate(text.splitlines(), 1):
        s = line.split("#", 1)[0].strip()
        if not s:
            continue
        key, sep, value = s.partition(":")
        key, value = key.strip(), value.strip()
        if not sep or not key.isidentifier() or not value or key in out:
            raise ValueError(f"{source}:{n}: expected a new `key: value` line, got {line.strip()!r}")
        out[key] = _scalar(value)
    return out


DEFAULTS: dict = parse(DEFAULT_YAML.read_text())

VERSION: str = str(DEFAULTS["version"])
CONF: float = float(DEFAULTS["conf"])
IOU: float = float(DEFAULTS["iou"])
KPT_THR: float = float(DEFAULTS["kpt_thr"])
MAX_DET: int = int(DEFAULTS["max_det"])
MAX_DET_LIMIT: int = int(DEFAULTS["max_det_limit"])
IMGSZ: int = int(DEFAULTS["imgsz"])
IMGSZ_MIN: int = int(DEFAULTS["imgsz_min"])
IMGSZ_MAX: int = int(DEFAULTS["imgsz_max"])
IMGSZ_MULTIPLE: int = int(DEFAULTS["imgsz_multiple"])
WEIGHTS: str = str(DEFAULTS["weights"])
BITS: int = int(DEFAULTS["bits"])
NUM_CALIB: int = int(DEFAULTS["num_calib"])
CALIB_MODE: str = str(DEFAULTS["calib_mode"])
QAT_EPOCHS: float = float(DEFAULTS["qat_epochs"])
QAT_LR: float = float(DEFAULTS["qat_lr"])
ACCURATE_FINETUNE_EPOCHS: float = float(DEFAULTS["accurate_finetune_epochs"])
#: target -> "half_even" | "half_up", from the rounding_<target> keys.
TARGET_ROUNDING: dict[str, str] = {k[len("rounding_"):]: str(v) for k, v in DEFAULTS.items()
                                   if k.startswith("rounding_")}


def check_thresholds(conf: float | None = None, iou: float | None = None, kpt_thr: float | None = None,
                     max_det: int | None = None) -> None:
    """The ranges the C++ postprocessor accepts, as one-line UserErrors naming the command-line flag."""
    from ..util import UserError

    if conf is not None and not 0.0 < conf < 1.0:
        raise UserError(f"--conf {conf:g} is out of range; give a score threshold between 0 and 1, both exclusive "
                        f"(default {CONF:g})")
    for flag, v, default in (("--iou", iou, IOU), ("--kpt-thr", kpt_thr, KPT_THR)):
        if v is not None and not 0.0 <= v <= 1.0:
            raise UserError(f"{flag} {v:g} is out of range; give a value from 0 to 1 (default {default:g})")
    if max_det is not None and max_det < 1:
        raise UserError(f"--max-det {max_det} is out of range; give 1 or more (default {MAX_DET})")
