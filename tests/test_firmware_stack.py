"""Stack of every firmware task entry, measured with a real RV32 cross compiler (issue 17).

The component sources, every test app's main/ and every example's main/ are compiled with Debian's
`riscv64-unknown-elf-g++` for the ESP32-P4's core (rv32imafc, -O2 as CONFIG_COMPILER_OPTIMIZATION_PERF) with
`-fstack-usage -fcallgraph-info=su`, against stand-in headers where ESP-IDF and ESP-DL are absent (tests/host/stubs,
tests/idf_stub/unity, a sdkconfig.h made from the app's sdkconfig files, the pose app's generated frame header) and
the host's libstdc++ headers with picolibc's C headers. From the frame sizes and the static call graph the compiler
writes, each task entry's worst chain is summed: `app_main` (main task) and, in core_unity, every Unity case (run in
the main task by `unity_run_menu()`, so app_main's frame is added). It must fit the stack the app configures for that
task (CONFIG_ESP_MAIN_TASK_STACK_SIZE, ESP-IDF's default 3584 when unset) with UNSEEN_STACK_MARGIN to spare.

Run `python -m tests.test_firmware_stack` for the table of every chain.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from .firmware import REPO, Config, all_configs

CXX = os.environ.get("YOLO11_POSE_RV32_CXX", "riscv64-unknown-elf-g++")
PICOLIBC_INCLUDE = Path(os.environ.get("YOLO11_POSE_PICOLIBC_INCLUDE", "/usr/lib/picolibc/riscv64-unknown-elf/include"))
RV32_FLAGS = ["-march=rv32imafc_zicsr_zifencei", "-mabi=ilp32f", "-O2", "-std=gnu++17", "-ffp-contract=off",
              # ESP-IDF's defaults: CONFIG_COMPILER_CXX_EXCEPTIONS=n, CONFIG_COMPILER_CXX_RTTI=n, sections per function
              "-fno-exceptions", "-fno-rtti", "-ffunction-sections", "-fdata-sections",
              "-fstack-usage", "-fcallgraph-info=su"]
# What the compiler cannot see, on top of the chain it sums: ESP-IDF's main-task wrapper and the Unity runner below
# the entry; ESP-DL's model loading and inference (dl::Model, its memory planner and layers, reached through virtual
# calls), printf/ESP_LOGx (newlib's vfprintf alone takes about 1 KB), FreeRTOS's saved context on a task switch; and
# the ESP32-S3's Xtensa windowed ABI, which gives every frame a 16-32 byte register save area that an RV32 frame
# lacks. Espressif's own YOLO11 pose example runs dl::Model in app_main with ESP-IDF's default 3584-byte main stack,
# so 2 KB covers ESP-DL with room; our code's own frames are all counted.
UNSEEN_STACK_MARGIN = 2048

SOURCES_COMPONENT = sorted((REPO / "src").glob("*.cpp"))
STUBS = [REPO / "tests" / "idf_stub" / "unity", REPO / "tests" / "host" / "stubs"]


def _fail_or_skip(msg: str):
    # CI installs the cross compiler (.ci/run): there a missing one is an error, on a laptop a skip.
    if os.environ.get("CI"):
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def libstdcxx_includes() -> list[Path]:
    """The host's libstdc++ headers (target-independent templates) and their config directory."""
    versions = [d for d in Path("/usr/include/c++").glob("*") if d.name.split(".")[0].isdigit()]
    for d in sorted(versions, key=lambda p: [int(x) for x in p.name.split(".") if x.isdigit()], reverse=True):
        cfg = list(Path("/usr/include").glob(f"*/c++/{d.name}/bits/c++config.h"))
        if (d / "algorithm").is_file() and cfg:
            return [d, cfg[0].parents[1]]
    return []


def toolchain_problem() -> str | None:
    if not shutil.which(CXX):
        return (f"{CXX} not found: apt-get install gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf "
                "(see .ci/run)")
    if not (PICOLIBC_INCLUDE / "stdint.h").is_file():
        return f"picolibc's headers are missing ({PICOLIBC_INCLUDE}): apt-get install picolibc-riscv64-unknown-elf"
    if not libstdcxx_includes():
        return "the host's libstdc++ headers (/usr/include/c++/N) are missing: apt-get install g++"
    return None


# ------------------------------------------------------------------------------------------------ compiling
def _overlay(root: Path) -> Path:
    """libstdc++'s x86-64 config minus what ties it to glibc: a bare-metal os_defines.h, single-thread gthreads."""
    d = root / "cxx_overlay" / "bits"
    d.mkdir(parents=True, exist_ok=True)
    (d / "os_defines.h").write_text("#pragma once\n#define _GLIBCXX_OS_DEFINES 1\n")
    (d / "gthr-default.h").write_text("#include <bits/gthr-single.h>\n")
    return d.parent


def sdkconfig_h(cfg: Config) -> str:
    """sdkconfig.h as ESP-IDF would write it for the options the sources read (bool y -> 1, strings quoted)."""
    vals = {"CONFIG_IDF_TARGET": cfg.target, f"CONFIG_IDF_TARGET_{cfg.target.upper()}": "y",
            f"CONFIG_YOLO11_POSE_MODEL_{cfg.model_source.upper()}": "y",
            f"CONFIG_YOLO11_POSE_MODEL_LOCATION_{cfg.model_location.upper()}": "y",
            "CONFIG_YOLO11_POSE_MODEL_PARTITION_LABEL": cfg.get("CONFIG_YOLO11_POSE_MODEL_PARTITION_LABEL", "model"),
            "CONFIG_YOLO11_POSE_MODEL_SDCARD_PATH": "/sdcard/yolo11_pose.espdl",
            "CONFIG_YOLO11_POSE_PREBUILT_IMGSZ": str(cfg.prebuilt_imgsz),
            "CONFIG_ESP_MAIN_TASK_STACK_SIZE": str(cfg.main_task_stack)}
    # The component's numeric Kconfig defaults (thresholds, max detections).
    kconfig = (REPO / "Kconfig").read_text()
    numeric = r"^\s*config (YOLO11_POSE_\w+)\n\s*int \"[^\"]*\"\n(?:\s*range .*\n)?\s*default (\d+)"
    for name, default in re.findall(numeric, kconfig, re.M):
        vals.setdefault(f"CONFIG_{name}", default)
    vals.update(cfg.values)
    lines = ["#pragma once"]
    for k, v in sorted(vals.items()):
        if v == "n":
            continue
        if v == "y":
            v = "1"
        elif not re.fullmatch(r"-?(0x[0-9a-fA-F]+|\d+)", v):
            v = '"' + v.replace('"', '\\"') + '"'
        lines.append(f"#define {k} {v}")
    return "\n".join(lines) + "\n"


def _pose_frames_header() -> str:
    """test_images.h as the pose app's build writes it (its own generator, without decoding the pictures)."""
    spec = importlib.util.spec_from_file_location("make_rgb", REPO / "test_apps" / "pose" / "tools" / "make_rgb.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    names = re.search(r"set\(frame_names ([^)]*)\)", (REPO / "test_apps/pose/main/CMakeLists.txt").read_text())
    return mod.c_header([(n, 0, 0) for n in names.group(1).split()])


@dataclass
class Compiled:
    ci_files: list[Path]
    su_files: list[Path]
    warnings: list[str]


def compile_app(cfg: Config, out: Path) -> Compiled:
    """Component + the app's main/*.cpp for RV32 with this configuration's sdkconfig.h."""
    out.mkdir(parents=True, exist_ok=True)
    inc = out / "include"
    inc.mkdir(exist_ok=True)
    (inc / "sdkconfig.h").write_text(sdkconfig_h(cfg))
    (inc / "test_images.h").write_text(_pose_frames_header())
    includes = ["-nostdinc++", "-isystem", str(_overlay(out))]
    for d in libstdcxx_includes():
        includes += ["-isystem", str(d)]
    includes += ["-isystem", str(PICOLIBC_INCLUDE), f"-I{inc}", *(f"-I{s}" for s in STUBS),
                 f"-I{REPO / 'include'}", f"-I{REPO / 'src'}"]
    srcs = [*SOURCES_COMPONENT, *sorted((cfg.app / "main").glob("*.cpp"))]
    limit = max(cfg.main_task_stack - UNSEEN_STACK_MARGIN, 0)

    def one(src: Path) -> subprocess.CompletedProcess:
        obj = out / (src.parent.name + "__" + src.name + ".o")
        return subprocess.run([CXX, *RV32_FLAGS, f"-Wstack-usage={limit}", *includes, "-c", str(src), "-o", str(obj)],
                              capture_output=True, text=True, check=False, timeout=600, cwd=out)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        results = list(ex.map(one, srcs))
    errors = [r.stderr for r in results if r.returncode != 0]
    assert not errors, f"{cfg.name}: RV32 compile failed:\n" + "\n".join(errors)[-4000:]
    warnings = [ln for r in results for ln in r.stderr.splitlines() if "warning:" in ln]
    return Compiled(sorted(out.glob("*.ci")), sorted(out.glob("*.su")), warnings)


# ------------------------------------------------------------------------------------------------ call graph
_NODE = re.compile(r'^node: \{ title: "([^"]+)" label: "((?:[^"\\]|\\.)*)"(.*)\}$')
_EDGE = re.compile(r'^edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"')
_BYTES = re.compile(r"\\n(\d+) bytes \(([a-z,]+)\)$")


@dataclass
class Graph:
    frames: dict[str, int]      # function -> frame bytes (defined functions only)
    qualifiers: dict[str, str]  # function -> "static" / "dynamic" / "dynamic,bounded"
    labels: dict[str, str]      # function -> readable name and place
    calls: dict[str, set[str]]  # function -> callees (external and indirect ones included, framed 0)


def read_callgraph(ci_files: list[Path]) -> Graph:
    g = Graph({}, {}, {}, {})
    for f in ci_files:
        for ln in f.read_text().splitlines():
            m = _NODE.match(ln)
            if m:
                title, label = m.group(1), m.group(2)
                b = _BYTES.search(label)
                if b:  # a function defined here (comdat copies in several files: keep the largest frame)
                    if int(b.group(1)) >= g.frames.get(title, -1):
                        g.frames[title] = int(b.group(1))
                        g.qualifiers[title] = b.group(2)
                    g.labels[title] = label[:b.start()].replace("\\n", " @ ")
                else:
                    g.labels.setdefault(title, label.replace("\\n", " @ "))
                continue
            m = _EDGE.match(ln)
            if m:
                g.calls.setdefault(m.group(1), set()).add(m.group(2))
    return g


def worst_chain(g: Graph, entry: str) -> tuple[int, list[str]]:
    """The deepest sum of frames from entry down the call graph. A recursive call counts its frame once (the core
    has none; libstdc++'s introsort recursion is bounded by 2*log2(n) small frames)."""
    memo: dict[str, tuple[int, list[str]]] = {}

    def visit(fn: str, path: frozenset) -> tuple[int, list[str]]:
        if fn in memo:
            return memo[fn]
        best = (0, [])
        for callee in sorted(g.calls.get(fn, ())):
            if callee in path:
                continue
            c = visit(callee, path | {callee})
            if c[0] > best[0]:
                best = c
        res = (g.frames.get(fn, 0) + best[0], [fn, *best[1]])
        memo[fn] = res
        return res

    return visit(entry, frozenset({entry}))


def unseen_callees(g: Graph, chain: list[str]) -> list[str]:
    """Functions called along the chain that the compiler did not see the body of (ESP-DL, ESP-IDF, libc)."""
    return sorted({c for fn in chain for c in g.calls.get(fn, ()) if c not in g.frames})


def short_name(label: str) -> str:
    """`yolo11_pose::YOLO11Pose::load` from `bool yolo11_pose::YOLO11Pose::load() @ file:line`."""
    sig = label.split(" @ ")[0]
    depth, cut = 0, len(sig)
    for i, ch in enumerate(sig):  # the parameter list: the first '(' outside template brackets
        depth += ch == "<"
        depth -= ch == ">"
        if ch == "(" and depth == 0:
            cut = i
            break
    head = sig[:cut]
    return head.split(" ")[-1] if not head.endswith("operator") else head



def display_name(g: Graph, fn: str) -> str:
    name = short_name(g.labels.get(fn, fn))
    if not re.match(r"[A-Za-z_{~]", name):  # GCC 12 labels a .part clone "0(...)": demangle its title instead
        mangled = fn.rsplit(":", 1)[-1].split(".")[0]
        filt = shutil.which(CXX.replace("g++", "c++filt")) or shutil.which("c++filt")
        if filt:
            mangled = subprocess.run([filt, mangled], capture_output=True, text=True, check=False).stdout.strip()
        name = short_name(mangled) + " (part)"
    return name


@dataclass
class Entry:
    name: str        # "app_main" or "test_postprocess.cpp:189 <case name>"
    total: int       # worst chain, bytes
    chain: list[str]
    stack: int       # configured stack of the task it runs in
    dynamic: list[str]

    @property
    def ok(self) -> bool:
        return self.total + UNSEEN_STACK_MARGIN <= self.stack and not self.dynamic

    def describe(self, g: Graph) -> str:
        parts = " -> ".join(f"{display_name(g, f)} ({g.frames.get(f, 0)})" for f in self.chain
                            if g.frames.get(f, 0))
        return (f"{self.name}: {self.total} B + {UNSEEN_STACK_MARGIN} B margin = {self.total + UNSEEN_STACK_MARGIN} "
                f"B of {self.stack} B [{parts}]" + (f" dynamic: {self.dynamic}" if self.dynamic else ""))


def task_entries(cfg: Config, g: Graph) -> list[Entry]:
    entries = []
    stack = cfg.main_task_stack
    main_total, main_chain = worst_chain(g, "app_main")
    assert main_chain and "app_main" in g.frames, f"{cfg.name}: no app_main compiled"
    entries.append(Entry("app_main", main_total, main_chain, stack, []))
    # Unity cases: unity_run_menu() (called by app_main, not seen) runs each in the main task.
    for title, label in sorted(g.labels.items()):
        m = re.search(r"unity_case_(\d+)", title)
        if m and title in g.frames:
            place = re.search(r"@ (?:.*/)?([\w.]+):\d+", label)
            total, chain = worst_chain(g, title)
            entries.append(Entry(f"{place.group(1) if place else '?'}:{m.group(1)} TEST_CASE",
                                 g.frames["app_main"] + total, ["app_main", *chain], stack, []))
    for e in entries:
        e.dynamic = [f for f in e.chain if g.qualifiers.get(f, "static") == "dynamic"]
    return entries


def analyse(cfg: Config, out: Path) -> tuple[list[Entry], Graph, Compiled]:
    comp = compile_app(cfg, out)
    g = read_callgraph(comp.ci_files)
    return task_entries(cfg, g), g, comp


def _configs_by_code() -> dict[str, Config]:
    """One configuration per distinct (app, sdkconfig.h): targets and configs that compile identically share."""
    out = {}
    for cfg in all_configs():
        key = hashlib.sha256((str(cfg.app) + sdkconfig_h(cfg)).encode()).hexdigest()[:12]
        out.setdefault(key, cfg)
    return out


CONFIGS = all_configs()


# ------------------------------------------------------------------------------------------------ tests
@pytest.fixture(scope="module")
def toolchain():
    problem = toolchain_problem()
    if problem:
        _fail_or_skip(problem)


def test_every_app_and_configuration_is_checked():
    names = {c.name for c in CONFIGS}
    assert {"pose/esp32p4/default", "pose/esp32s3/regenerate", "core_unity/esp32s3/default",
            "get_started/esp32p4/default", "get_started/esp32s3/default"} <= names, names


def test_chain_sums_frames_the_compiler_sees_across_files(toolchain, tmp_path):
    """The machinery on a hand-made program: a 3000-byte local two calls down, in another file, is counted."""
    (tmp_path / "a.cpp").write_text('extern "C" void app_main(void);\nint leaf(int);\nint mid(int x);\n'
                                    'extern "C" void app_main(void) { volatile int r = mid(3); (void)r; }\n')
    (tmp_path / "b.cpp").write_text(
                                    'int __attribute__((noinline)) leaf(int x) { volatile char b[3000];'
                                    ' for (int i = 0; i < 3000; i++) b[i] = (char)(x + i); return b[x]; }\n'
                                    'int __attribute__((noinline)) mid(int x) { volatile int y[100]; y[x] = x;'
                                    ' return leaf(y[x]) + 1; }\n')
    out = tmp_path / "o"
    out.mkdir()
    for s in ("a.cpp", "b.cpp"):
        r = subprocess.run([CXX, *RV32_FLAGS, "-c", str(tmp_path / s), "-o", str(out / (s + ".o"))], cwd=out,
                           capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stderr
    g = read_callgraph(sorted(out.glob("*.ci")))
    total, chain = worst_chain(g, "app_main")
    assert chain == ["app_main", "_Z3midi", "_Z4leafi"]
    assert g.frames["_Z4leafi"] >= 3000 and g.frames["_Z3midi"] >= 400
    assert total == sum(g.frames[f] for f in chain)
    cfg = Config(REPO / "examples" / "get_started", "esp32p4", "default", {})  # 3584 B: 3000 + 400 + margin > it
    (e,) = [x for x in task_entries(cfg, g) if x.name == "app_main"]
    assert not e.ok


@pytest.mark.parametrize("cfg", list(_configs_by_code().values()), ids=lambda c: c.name)
def test_task_stacks_fit(toolchain, cfg, tmp_path):
    entries, g, comp = analyse(cfg, tmp_path)
    assert any(e.name == "app_main" for e in entries)
    if cfg.app.name == "core_unity":
        n_cases = sum(len(re.findall(r"^TEST_CASE\(", p.read_text(), re.M)) for p in (cfg.app / "main").glob("*.cpp"))
        assert sum("TEST_CASE" in e.name for e in entries) == n_cases, "a Unity case was not found in the call graph"
    bad = [e.describe(g) for e in entries if not e.ok]
    assert not bad, (f"{cfg.name}: task stack too small (CONFIG_ESP_MAIN_TASK_STACK_SIZE={cfg.main_task_stack}; "
                     f"margin {UNSEEN_STACK_MARGIN} B for what the compiler cannot see):\n  " + "\n  ".join(bad)
                     + ("\n-Wstack-usage:\n  " + "\n  ".join(comp.warnings) if comp.warnings else ""))


def main() -> int:
    """Print every task entry's chain (python -m tests.test_firmware_stack)."""
    import tempfile

    problem = toolchain_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    worst = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, cfg in enumerate(_configs_by_code().values()):
            entries, g, _ = analyse(cfg, Path(tmp) / str(i))
            print(f"{cfg.name} (CONFIG_ESP_MAIN_TASK_STACK_SIZE={cfg.main_task_stack}):")
            for e in sorted(entries, key=lambda e: -e.total):
                print(("  ok   " if e.ok else "  FAIL ") + e.describe(g))
                worst |= not e.ok
    return 1 if worst else 0


if __name__ == "__main__":
    sys.exit(main())
