"""Defaults and limits, read from default.yaml beside this file (their one owner; see its header)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from yolo11_pose.device.head import BRANCHES

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

    Read with the standard library: the CMake hook's settings check (cmake_helper.py) imports this package before it
    knows whether PyYAML is installed (tests/test_defaults.py checks that PyYAML reads the file the same way).
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
    from yolo11_pose.util import UserError

    if conf is not None and not 0.0 < conf < 1.0:
        raise UserError(f"--conf {conf:g} is out of range; give a score threshold between 0 and 1, both exclusive "
                        f"(default {CONF:g})")
    for flag, v, default in (("--iou", iou, IOU), ("--kpt-thr", kpt_thr, KPT_THR)):
        if v is not None and not 0.0 <= v <= 1.0:
            raise UserError(f"{flag} {v:g} is out of range; give a value from 0 to 1 (default {default:g})")
    if max_det is not None and max_det < 1:
        raise UserError(f"--max-det {max_det} is out of range; give 1 or more (default {MAX_DET})")


def check_imgsz(imgsz: int, what: str = "imgsz") -> int:
    """A model input size the export and the device's preprocessing accept."""
    if not (IMGSZ_MIN <= imgsz <= IMGSZ_MAX) or imgsz % IMGSZ_MULTIPLE:
        from yolo11_pose.util import UserError

        raise UserError(f"{what} {imgsz} is not supported: it is not a multiple of {IMGSZ_MULTIPLE} in "
                        f"{IMGSZ_MIN}..{IMGSZ_MAX}; use e.g. 320 or 640")
    return imgsz


# ------------------------------------------------------------------------------------------------- build settings
# Everything a model build depends on, defined once here. The command line (cli.py: names, defaults, help), the
# build key and the manifest's "settings" (build.py, quantize.py), the settings file of the CMake regeneration
# (cmake_helper.py) and the Kconfig checks (tests/test_defaults.py) are all derived from SETTINGS: a new setting is
# one more entry below, plus the code that uses its value.
LAYER_FILE_SUFFIXES = (".txt", ".lst", ".list", ".csv", ".cfg", ".conf", ".yaml", ".yml", ".json")


def parse_layer_list(spec) -> list[str]:
    """`--int16-layers`: comma-separated names, or a file with one name per line (# comments allowed)."""
    from yolo11_pose.util import UserError

    if not spec:
        return []
    if not isinstance(spec, str):
        return [str(s) for s in spec]
    p = Path(spec)
    if p.is_file():
        text = p.read_text().replace(",", "\n")
        return [ln.split("#")[0].strip() for ln in text.splitlines() if ln.split("#")[0].strip()]
    # One item that looks like a file (a list-file suffix, or in an existing folder) but is not there: say so, instead
    # of reporting an unknown layer. Layer names end in an operator (`/model.0/conv/Conv`), not in a suffix.
    if "," not in spec and (p.suffix.lower() in LAYER_FILE_SUFFIXES or
                            (str(p.parent) not in (".", "/") and p.parent.is_dir())):
        raise UserError(f"--int16-layers file {spec} not found; give an existing file (one layer per line) or "
                        "comma-separated layer names")
    return [s.strip() for s in spec.split(",") if s.strip()]


def check_device(device: str, what: str = "--device") -> str:
    """cpu or cuda[:N] (whether torch sees that GPU is recipe.check_device's question, asked when it runs)."""
    if device != "cpu" and not str(device).startswith("cuda"):
        from yolo11_pose.util import UserError

        raise UserError(f"{what} {device!r}: use cpu or cuda (cuda:N)")
    return device


def _share(v, what):
    if v is not None and not (0.0 <= float(v) <= 1.0):
        from yolo11_pose.util import UserError

        raise UserError(f"{what} {v} must be a share between 0 and 1 (e.g. 0.1 for 10 % of MACs)")


def _epochs(v, what):
    if v is not None and not (0 < float(v) <= 1000):
        from yolo11_pose.util import UserError

        raise UserError(f"{what} {v:g}: give the passes over the calibration images, e.g. {QAT_EPOCHS:g}")


def _lr(v, what):
    if v is not None and not (0 < float(v) < 1):
        from yolo11_pose.util import UserError

        raise UserError(f"{what} {v:g}: give a learning rate between 0 and 1, e.g. {QAT_LR:g}")


#: The subcommands that make a model from weights, and the one that quantizes a given ONNX.
FROM_WEIGHTS = ("build", "qat")
QUANT = ("quantize", *FROM_WEIGHTS)


@dataclass(frozen=True)
class Setting:
    """One build setting. ``key``: the built files depend on it (so it is in the build key and the manifest's
    "settings"); ``kconfig``: its CONFIG_YOLO11_POSE_<kconfig> symbol, when menuconfig offers it (``env``: empty there,
    the environment variable YOLO11_POSE_<kconfig> is read, then the default)."""

    name: str
    kind: type                      # int, float, str, bool or list (of str)
    default: object
    help: str
    commands: tuple = QUANT         # the `yolo11-pose` subcommands that take it
    choices: tuple = ()
    required: bool = False          # on the command line
    nullable: bool = False          # None is a value ("not used")
    key: bool = True
    kconfig: str = ""
    env: bool = False
    flag: str = ""                  # default: --name-with-dashes
    metavar: str | None = None
    check: object = None            # check(value, what) raises UserError
    command_defaults: dict = field(default_factory=dict)  # another default on some subcommands

    @property
    def option(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def default_for(self, command: str | None = None):
        return self.command_defaults.get(command, self.default)

    def help_for(self, command: str | None = None) -> str:
        return self.help.format(default=self.default_for(command))


CALIB_HELP = ("images for calibration: a folder, a list file (one name per line) or a glob (quote it, "
              "e.g. 'calib/*.jpg')")
IMGSZ_HELP = f"square model input size in pixels, a multiple of {IMGSZ_MULTIPLE} from {IMGSZ_MIN} to {IMGSZ_MAX}"
WEIGHTS_HELP = "Ultralytics pose .pt (or architecture .yaml)"

SETTINGS: tuple[Setting, ...] = (
    Setting("weights", str, WEIGHTS, WEIGHTS_HELP, commands=("export", *FROM_WEIGHTS), required=True, nullable=True,
            kconfig="WEIGHTS", env=True),
    Setting("imgsz", int, IMGSZ, IMGSZ_HELP + " (default {default})", commands=("export", *FROM_WEIGHTS),
            kconfig="IMGSZ", check=check_imgsz),
    Setting("force", bool, False, "rebuild even when up to date", commands=FROM_WEIGHTS, key=False),
    Setting("branch", str, "auto", "head branch to export: YOLO26 has one2one (end-to-end top-k, no NMS; its default) "
            "and one2many (NMS); YOLOv8/YOLO11 only one2many. auto: the family's default",
            commands=("export", *FROM_WEIGHTS), choices=("auto", *BRANCHES), nullable=True),  # None: auto
    Setting("finetune_epochs", float, None, "passes over the calibration images (default {default:g}; fractions "
            "allowed)", commands=("qat",), nullable=True, flag="--epochs", check=_epochs,
            command_defaults={"qat": QAT_EPOCHS}),
    Setting("finetune_lr", float, None, "learning rate (Adam; default {default:g})", commands=("qat",), nullable=True,
            flag="--lr", check=_lr, command_defaults={"qat": QAT_LR}),
    Setting("target", str, None, "the chip", choices=tuple(sorted(TARGET_ROUNDING)), required=True, nullable=True),
    Setting("bits", int, BITS, "8 or 16 (default {default}); mixed precision: 8 with --int16-layers", choices=(8, 16),
            kconfig="BITS"),
    Setting("calib", str, None, CALIB_HELP, required=True, nullable=True, kconfig="CALIB", env=True),
    Setting("num_calib", int, NUM_CALIB, "number of calibration images (default {default})", kconfig="NUM_CALIB"),
    Setting("calib_mode", str, CALIB_MODE, "calibration preprocessing (default {default}; letterbox = device-exact)",
            choices=("square", "letterbox"), kconfig="CALIB_MODE"),
    Setting("int16_layers", list, (), "mixed precision: layers to run in int16, named as `yolo11-pose inspect` lists "
            "them (comma-separated, or a file with one per line)", kconfig="INT16_LAYERS"),
    Setting("seed", int, 0, "seed of the calibration image selection"),
    Setting("error_report", bool, False, "also write graph-wise and layer-wise noise-to-signal tables and a chart "
            "(slow)", key=False),
    Setting("export_test_values", bool, False, "embed a test input and its expected outputs for dl::Model::test() on "
            "the device", kconfig="TEST_VALUES"),
    Setting("recipe", str, "fast", "quantization recipe (default {default}). fast: minutes; accurate: measured "
            "calibration choice, int16 for sensitive layers, finer score logits, a short label-free fine-tuning, plus "
            "bias correction and TQT with --device cuda (hours on a CPU, so off there); no labels needed",
            choices=("fast", "accurate"), command_defaults={"qat": "accurate"}),
    Setting("int16_budget", float, None, "mixed precision chosen by measured sensitivity: at most this share of MACs "
            "in int16 (0..1)", nullable=True, metavar="SHARE", check=_share),
    Setting("device", str, "cpu", "cpu (default) or cuda[:N], for ESP-PPQ and torch", key=False, check=check_device),
)


def setting(name: str) -> Setting:
    return next(s for s in SETTINGS if s.name == name)


def _label(s: Setting, source: str) -> str:
    """How messages name a setting: its flag, or for CMake its CONFIG_ symbol (its name when menuconfig has none)."""
    if source == "cmake":
        return f"CONFIG_YOLO11_POSE_{s.kconfig}" if s.kconfig else s.name
    return s.option


def _coerce(s: Setting, v, what: str):
    from yolo11_pose.util import UserError

    if v is None:
        if s.nullable:
            return None
        if isinstance(s.default, (list, tuple)):  # None for a list setting (the old keyword default): empty
            return list(s.default)
        raise UserError(f"{what} must be given")
    try:
        if s.kind is bool:
            if isinstance(v, str):
                if v.strip().lower() not in ("", "0", "1", "y", "n", "yes", "no", "true", "false", "on", "off"):
                    raise ValueError(v)
                return v.strip().lower() in ("1", "y", "yes", "true", "on")
            return bool(v)
        if s.kind is list:
            return tuple(parse_layer_list(v))
        if s.kind is int and isinstance(v, float) and not v.is_integer():
            raise ValueError(v)
        return s.kind(v)
    except (TypeError, ValueError):
        raise UserError(f"{what} {v!r} is not a{'n' if s.kind is int else ''} {s.kind.__name__}") from None


class Settings:
    """The build settings, validated once and frozen: what a build, the build key and the manifest are made from.

    Attributes are the names in SETTINGS (``s.imgsz``); ``replace(**changes)`` makes a new, validated one."""

    __slots__ = ("_values",)

    def __init__(self, values: dict):
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name):
        if name.startswith("_"):  # copy/pickle probe before _values exists
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"no build setting {name!r}") from None

    def __reduce__(self):
        return Settings, (self._values,)

    def __setattr__(self, name, value):
        raise AttributeError("Settings are frozen; use .replace(...)")

    def __eq__(self, other):
        return isinstance(other, Settings) and self._values == other._values

    def __hash__(self):
        return hash(tuple(sorted(self._values.items())))

    def __repr__(self):
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in self._values.items()) + ")"

    def replace(self, **changes) -> Settings:
        return make_settings(**{**self._values, **changes})

    def as_dict(self) -> dict:
        """Every setting, JSON-ready (lists for tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self._values.items()}

    def key_values(self) -> dict:
        """The settings the built files depend on (``Setting.key``), JSON-ready, in SETTINGS order."""
        d = self.as_dict()
        return {s.name: d[s.name] for s in SETTINGS if s.key and s.name in d}

    def cli_args(self, command: str = "build") -> list[str]:
        """The `yolo11-pose <command>` arguments that give these settings, defaults included (what CMake's settings
        file holds: it changes exactly when the command does)."""
        args = []
        for s in SETTINGS:
            v = self._values.get(s.name)
            if command not in s.commands or v is None:
                continue
            if s.kind is bool:
                args += [s.option] if v else []
            elif s.kind is list:
                args += [s.option, ",".join(v)] if v else []
            else:
                args += [s.option, str(v)]
        return args


def make_settings(source: str = "python", **values) -> Settings:
    """The one place settings are checked: unknown names, types, choices, ranges, combinations. Names not given take
    their defaults. ``source`` ("python", "cli", "cmake") only picks how messages name a setting."""
    from yolo11_pose.util import UserError

    known = {s.name: s for s in SETTINGS}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise UserError(f"unknown build setting {unknown[0]!r}; settings are {', '.join(known)}")
    out = {}
    for s in SETTINGS:
        what = _label(s, source)
        v = _coerce(s, values.get(s.name, s.default), what)
        if s.name == "branch" and v is None:
            v = "auto"
        if v is not None and s.choices and v not in s.choices:
            raise UserError(f"unknown {what} {v!r}; use one of {', '.join(map(str, s.choices))}")
        if v is not None and s.check is not None:
            s.check(v, what)
        out[s.name] = v
    if out.get("int16_layers") and out.get("bits") == 16:
        bits = _label(known["bits"], source)
        raise UserError(f"{_label(known['int16_layers'], source)} only makes sense with {bits} 8 (everything is int16 "
                        f"with {bits} 16)")
    return Settings(out)
