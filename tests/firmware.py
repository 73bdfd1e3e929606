"""What an app's build would be configured with, read from its files as ESP-IDF and idf-build-apps read them.

Shared by tests/test_firmware_stack.py (stack per task) and tests/test_firmware_config.py (partitions, PSRAM,
watchdog, sizes). No ESP-IDF here: the few Kconfig defaults that matter are resolved by hand below, from the
component's Kconfig and ESP-IDF's documented defaults.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
MB = 1 << 20
CHIPS = ("esp32p4", "esp32s3")
# ESP-IDF defaults for options the apps may leave unset (components/esp_system/Kconfig, esp_system task_wdt).
IDF_DEFAULTS = {
    "CONFIG_ESP_MAIN_TASK_STACK_SIZE": "3584",
    "CONFIG_ESP_TASK_WDT_EN": "y",
    "CONFIG_ESP_TASK_WDT_TIMEOUT_S": "5",
    "CONFIG_PARTITION_TABLE_OFFSET": "0x8000",
}


def apps() -> list[Path]:
    """Every firmware project of the repository: test_apps/* and examples/*."""
    return sorted(p.parent for p in [*REPO.glob("test_apps/*/CMakeLists.txt"), *REPO.glob("examples/*/CMakeLists.txt")])


def chip_targets(app: Path) -> list[str]:
    """The chips .build-test-rules.yml builds the app for (the linux target has no task stacks or flash)."""
    rules = yaml.safe_load((REPO / ".build-test-rules.yml").read_text())
    rule = rules[app.relative_to(REPO).as_posix()]["enable"][0]["if"]
    targets = re.findall(r'"(\w+)"', rule)
    return [t for t in targets if t in CHIPS]


def configs(app: Path) -> list[str]:
    """idf-build-apps' configurations: sdkconfig.ci (default) and sdkconfig.ci.<name>."""
    return ["default"] + sorted(p.name.split(".", 2)[2] for p in app.glob("sdkconfig.ci.*"))


def read_sdkconfig(path: Path) -> dict[str, str]:
    out = {}
    if path.is_file():
        for ln in path.read_text().splitlines():
            if ln.strip() and not ln.lstrip().startswith("#"):
                k, _, v = ln.partition("=")
                out[k.strip()] = v.strip().strip('"')
    return out


@dataclass
class Config:
    app: Path
    target: str
    config: str
    values: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.app.name}/{self.target}/{self.config}"

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, IDF_DEFAULTS.get(key, default))

    def on(self, key: str) -> bool:
        return self.get(key) == "y"

    @property
    def main_task_stack(self) -> int:
        return int(self.get("CONFIG_ESP_MAIN_TASK_STACK_SIZE"))

    # ----------------------------------------------------------------------------------- the component's choices
    def _choice(self, prefix: str, options: tuple[str, ...], default: str) -> str:
        """The Kconfig choice set to y among CONFIG_<prefix><option>, lower-cased; else the default."""
        return next((o.lower() for o in options if self.on(f"CONFIG_{prefix}{o}")), default)

    @property
    def model_source(self) -> str:
        return self._choice("YOLO11_POSE_MODEL_", ("CUSTOM_FILE", "REGENERATE"), "prebuilt")

    @property
    def model_location(self) -> str:
        return self._choice("YOLO11_POSE_MODEL_LOCATION_", ("FLASH_PARTITION", "SDCARD"), "flash_rodata")

    @property
    def prebuilt_imgsz(self) -> int:
        if self.on("CONFIG_YOLO11_POSE_PREBUILT_416"):
            return 416
        if self.on("CONFIG_YOLO11_POSE_PREBUILT_640"):
            return 640
        return 416 if self.target == "esp32s3" else 640  # Kconfig: default 416 if IDF_TARGET_ESP32S3

    def prebuilt_model(self) -> Path:
        return REPO / "models" / self.target / f"yolo11n-pose-{self.prebuilt_imgsz}-int8.espdl"

    def with_values(self, **kv: str) -> "Config":
        return Config(self.app, self.target, self.config, {**self.values, **kv})


def load_config(app: Path, target: str, config: str = "default") -> Config:
    """sdkconfig.defaults, .<target>, then sdkconfig.ci[.<config>] and its .<target>: ESP-IDF's SDKCONFIG_DEFAULTS
    order as idf-build-apps passes it (each file followed by its target-specific twin)."""
    files = ["sdkconfig.defaults", f"sdkconfig.defaults.{target}"]
    ci = "sdkconfig.ci" if config == "default" else f"sdkconfig.ci.{config}"
    files += [ci, f"{ci}.{target}"]
    values: dict[str, str] = {}
    for f in files:
        values.update(read_sdkconfig(app / f))
    return Config(app, target, config, values)


def all_configs() -> list[Config]:
    return [load_config(a, t, c) for a in apps() for t in chip_targets(a) for c in configs(a)]


# ----------------------------------------------------------------------------------------------- partition tables
def parse_size(text: str) -> int:
    text = text.strip()
    m = re.fullmatch(r"(0x[0-9a-fA-F]+|\d+)([KM]?)", text)
    assert m, f"size {text!r}"
    return int(m.group(1), 0) * {"": 1, "K": 1024, "M": MB}[m.group(2)]


def partitions(csv: Path, table_offset: int = 0x8000) -> list[dict]:
    """ESP-IDF's partition CSV, empty offsets filled in as gen_esp32part.py does (apps aligned to 64 KB, data to
    4 KB, the first one right after the table)."""
    parts, end = [], table_offset + 0x1000
    for ln in csv.read_text().splitlines():
        if not ln.strip() or ln.lstrip().startswith("#"):
            continue
        name, typ, sub, off, size = [c.strip() for c in ln.split(",")[:5]]
        align = 0x10000 if typ == "app" else 0x1000
        start = parse_size(off) if off else (end + align - 1) // align * align
        assert start >= end and start % align == 0, f"{csv}: {name} at {start:#x} overlaps or is misaligned"
        end = start + parse_size(size)
        parts.append({"name": name, "type": typ, "subtype": sub, "offset": start, "size": parse_size(size)})
    return parts


def flash_size(cfg: Config) -> int:
    sizes = [n for n in (2, 4, 8, 16, 32, 64, 128) if cfg.on(f"CONFIG_ESPTOOLPY_FLASHSIZE_{n}MB")]
    return (sizes[0] if sizes else 2) * MB  # ESP-IDF's default is 2 MB
