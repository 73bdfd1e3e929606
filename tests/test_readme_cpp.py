"""Every ```cpp block of README.md compiles, as written, against the component's headers and the host stand-ins of
ESP-DL (tests/host/stubs), and those stand-ins declare what ESP-DL 3.3.9 itself declares.

A README block is one translation unit: its own #includes, code inside functions.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STUBS = REPO / "tests" / "host" / "stubs"
CXX = os.environ.get("CXX", "g++")
# ESP-IDF's C++ settings for the component (-std=gnu++2b in ESP-IDF 5.5, no exceptions or RTTI by default).
FLAGS = ["-std=gnu++2b", "-fno-exceptions", "-fno-rtti", "-Wall", "-Wextra", "-Werror"]


def cpp_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```cpp\n(.*?)^```", markdown, re.S | re.M)


def compile_cpp(source: str, tmp_path: Path, name: str) -> subprocess.CompletedProcess:
    src = tmp_path / f"{name}.cpp"
    src.write_text(source)
    return subprocess.run([CXX, *FLAGS, f"-I{STUBS}", f"-I{REPO / 'include'}", "-c", str(src), "-o",
                           str(tmp_path / f"{name}.o")], capture_output=True, text=True, check=False, timeout=120)


@pytest.fixture(autouse=True)
def _compiler():
    if shutil.which(CXX) is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"{CXX} not found")


BLOCKS = cpp_blocks((REPO / "README.md").read_text())


def test_readme_has_cpp_examples():
    assert BLOCKS, "README.md has no ```cpp block"


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_cpp_block_compiles(tmp_path, i):
    r = compile_cpp(BLOCKS[i], tmp_path, f"readme_{i}")
    assert r.returncode == 0, f"README.md ```cpp block {i + 1} does not compile:\n{r.stderr}"


def test_the_stubs_refuse_what_esp_dl_refuses(tmp_path):
    """The stand-ins are only useful if they reject what the real headers reject: ESP-DL's Detect has no default
    model index, so the README's first version (a Detect& chained with a one-argument set_nms_thr) must fail."""
    bad = ('#include "yolo11_pose.hpp"\n'
           "void f(dl::detect::Detect &d) { d.set_score_thr(0.3f, 0).set_nms_thr(0.6f); }\n")
    r = compile_cpp(bad, tmp_path, "bad")
    assert r.returncode != 0 and "set_nms_thr" in r.stderr
    good = ('#include "yolo11_pose.hpp"\n'
            "void f(dl::detect::Detect &d) { d.set_score_thr(0.3f, 0).set_nms_thr(0.6f, 0); }\n")
    r = compile_cpp(good, tmp_path, "good")
    assert r.returncode == 0, r.stderr


# ------------------------------------------------------------------------------------------------ stubs vs ESP-DL
ESPDL_MIRROR = Path(os.environ.get("ESP_DL_GIT", "/work/.mirror/espressif+esp-dl/repo"))
ESPDL_REF = os.environ.get("ESP_DL_REF", "v3.3.9")  # the version idf_component.yml asks for (^3.3.9)
# stub header -> the esp-dl headers its declarations come from
SOURCES = {
    "dl_detect_base.hpp": ["esp-dl/vision/detect/dl_detect_base.hpp"],
    "dl_detect_define.hpp": ["esp-dl/vision/detect/dl_detect_define.hpp"],
    "dl_image_define.hpp": ["esp-dl/vision/image/dl_image_define.hpp"],
    "dl_model_base.hpp": ["esp-dl/dl/model/include/dl_model_base.hpp", "esp-dl/dl/tensor/include/dl_tensor_base.hpp",
                          "esp-dl/dl/dl_define.hpp", "esp-dl/fbs_loader/include/fbs_model.hpp"],
}


def statements(code: str) -> set[str]:
    """Declarations as normalized strings: comments dropped, whitespace collapsed, split at ; { and }."""
    code = re.sub(r"//[^\n]*|/\*.*?\*/", " ", code, flags=re.S)
    code = re.sub(r"^\s*#.*$", " ", code, flags=re.M)
    code = re.sub(r"\b(?:public|private|protected)\s*:", ";", code)
    out = set()
    for part in re.split(r"[;{}]", code):
        s = " ".join(part.split())
        s = re.sub(r"\s*([(),=&*<>])\s*", r"\1", s)
        if s:
            out.add(s)
    return out


def _git_show(path: str) -> str | None:
    r = subprocess.run(["git", "-C", str(ESPDL_MIRROR), "show", f"{ESPDL_REF}:{path}"], capture_output=True,
                       text=True, check=False)
    return r.stdout if r.returncode == 0 else None


@pytest.mark.parametrize("stub", sorted(SOURCES))
def test_stub_declarations_are_esp_dls(stub):
    """Every declaration of a stand-in (bar the few stand-in-only ones below) is in ESP-DL's own headers."""
    if not (ESPDL_MIRROR / "HEAD").exists() and not (ESPDL_MIRROR / ".git").exists():
        pytest.skip(f"needs a git checkout or mirror of espressif/esp-dl at {ESPDL_MIRROR} (ESP_DL_GIT)")
    texts = [_git_show(p) for p in SOURCES[stub]]
    if any(t is None for t in texts):
        pytest.fail(f"{ESPDL_MIRROR} has no {ESPDL_REF} with {SOURCES[stub]}; set ESP_DL_REF")
    real = set().union(*(statements(t) for t in texts))
    # Stand-in-only lines: a forward declaration, and ExponentInfo's per-tensor member (the real class has more).
    own = {"class FbsModel", "int m_exponent", "ExponentInfo(int exponent=0): m_exponent(exponent)"}
    ours = statements((STUBS / stub).read_text()) - own
    missing = sorted(s for s in ours if s not in real and not s.startswith(("namespace", "return", "}")))
    assert not missing, f"{stub} declares what ESP-DL {ESPDL_REF} does not: {missing}"


def readme_cli_lines(markdown: str) -> list[list[str]]:
    """The `yolo11-pose ...` command lines of the README's shell blocks, continuation lines joined, comments cut."""
    import shlex

    out = []
    for block in re.findall(r"^```(?:bash|sh)\n(.*?)^```", markdown, re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            for part in re.split(r"&&|\|", line):
                words = shlex.split(part, comments=True)
                if words and words[0] == "yolo11-pose":
                    out.append(words[1:])
    return out


def test_readme_command_lines_parse():
    """Every command the README shows is one the CLI accepts, flags and values included (parsed, not run)."""
    from yolo11_pose.cli import parser

    lines = readme_cli_lines((REPO / "README.md").read_text())
    cmds = {w[0] for w in lines}
    assert {"build", "predict", "eval", "inspect", "qat"} <= cmds, cmds
    for words in lines:
        parser().parse_args(words)
