"""What cmake/yolo11_pose_model.cmake asks at configure time when the model is regenerated from weights:

    python -m yolo11_pose.make.cmake_helper regenerate --work-dir W --project-dir P --target T --python PY
        --component-dir C [--python-configured] [CONFIG_YOLO11_POSE_<NAME>=<value> ...]

From menuconfig's values (empty: the environment variable YOLO11_POSE_<NAME> where cfg.SETTINGS says so, then the
default) it makes the build settings (cfg.make_settings, the checks every front end shares), resolves the weights,
calibration images and int16 layer file against the project, checks that this interpreter can run the build, and
writes two files into W:

- ``settings.txt``: the `yolo11-pose build` command line, one argument per line, rewritten only when it changes (its
  timestamp is the build step's "a setting changed" input);
- ``regenerate.cmake``: what the CMake module includes: the command, its file dependencies, the step's comment, the
  globs CMake re-lists on every build (a calibration folder that gains an image reconfigures) and status messages.

A problem is one message on stdout and exit code 2; CMake stops with it. Imports only the standard library and cfg
until the interpreter check has passed, so that it runs in an environment without the ML packages to say so.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from yolo11_pose import cfg
from yolo11_pose.util import UserError

MENU = "menuconfig > Component config > YOLO11 pose estimation"
REGEN_MENU = f"{MENU} > Model regeneration"
PREFIX = "CONFIG_YOLO11_POSE_"


def _abspath(path: str, base: Path) -> Path:
    """As CMake's get_filename_component(ABSOLUTE BASE_DIR): relative to `base`, normalised, links not resolved."""
    return Path(os.path.normpath(os.path.join(base, os.path.expanduser(path))))


def config_values(config: dict[str, str]) -> dict:
    """Setting values from CONFIG_YOLO11_POSE_* (and the environment), for the settings menuconfig offers."""
    values = {}
    for s in cfg.SETTINGS:
        if not s.kconfig:
            continue
        v = config.get(PREFIX + s.kconfig, "")
        if v == "" and s.env:
            v = os.environ.get(f"YOLO11_POSE_{s.kconfig}", "")
        if v != "" or s.kind is bool:
            values[s.name] = v
    return values


def python_problem(python: str, configured: bool, component_dir: str) -> str | None:
    """Why this interpreter cannot run `yolo11-pose build`, with the install command; None when it can."""
    if sys.version_info < (3, 10):
        why = "Python >= 3.10 needed, this is %d.%d" % sys.version_info[:2]
    else:
        try:
            from yolo11_pose.make import build
        except ImportError as e:
            why = f"Python packages missing: {e.name or e}"
        else:
            missing = build.missing_ml_packages()
            if not missing:
                return None
            why = f"Python packages missing: {', '.join(missing)}"
    install = f'"{python}" -m pip install "{component_dir}"'
    if configured:
        return (f"regenerating the model needs PyTorch, Ultralytics and ESP-PPQ in {python}, but {why}. Install them "
                f"with: {install}  (or set 'Python interpreter' in {REGEN_MENU} to another environment, or choose the "
                "prebuilt model)")
    # ESP-IDF's own interpreter: offer an environment of their own first, rather than ~3 GB of ML packages in the
    # environment ESP-IDF's installer manages.
    venv = f"{os.environ['HOME']}/yolo11-pose-venv" if os.environ.get("HOME") else "yolo11-pose-venv"
    return (f"regenerating the model needs PyTorch, Ultralytics and ESP-PPQ, but ESP-IDF's Python ({python}) has not: "
            f"{why}. Best, give them an environment of their own: python3 -m venv \"{venv}\" && \"{venv}/bin/python\" "
            f"-m pip install \"{component_dir}\", then set 'Python interpreter' in {REGEN_MENU} to {venv}/bin/python. "
            f"Install them with: {install}  to put them (about 3 GB with PyTorch) into ESP-IDF's environment instead; "
            "or choose the prebuilt model")


def _bracket(text: str) -> str:
    """A CMake bracket argument: taken verbatim (no variable references, no escapes)."""
    n = 1
    while f"]{'=' * n}]" in text:
        n += 1
    return f"[{'=' * n}[{text}]{'=' * n}]"


def _write_if_changed(path: Path, text: str) -> None:
    """Rewritten only when the content changes, so that the timestamp means "changed"."""
    if path.is_file() and path.read_text() == text:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def regenerate(config: dict[str, str], work_dir: Path, project_dir: Path, target: str, python: str,
               component_dir: str, python_configured: bool) -> dict:
    """The build step of a regenerating configuration: {"command", "depends", "comment", "globs", "configure_depends",
    "status"}. Raises UserError naming the menuconfig setting to fix."""
    values = config_values(config)
    int16_file = None
    if values.get("int16_layers"):
        lpath = _abspath(values["int16_layers"], project_dir)
        if lpath.is_file():  # the command reads the file: its content is an input of the build step
            values["int16_layers"] = int16_file = str(lpath)
    s = cfg.make_settings(source="cmake", target=target, **values)  # types, choices and ranges, as the CLI's
    depends = [int16_file] if int16_file else []
    status, globs, configure_depends = [], [], []

    # Weights: a file (the build depends on its content), or the bare name of an official checkpoint or architecture
    # that Ultralytics fetches itself (the command runs in work_dir, where a download lands).
    wpath = _abspath(s.weights, project_dir)
    if wpath.is_file():
        weights = str(wpath)
        depends.append(weights)
    elif not re.search(r"[/\\]", s.weights) and re.match(r"^yolo.*\.(pt|yaml|yml)$", s.weights):
        weights = s.weights  # the bare name even once downloaded, so that the command line stays the same
        if (work_dir / weights).is_file():
            depends.append(str(work_dir / weights))
        else:
            status.append(f"yolo11_pose: {weights} is not in the project; Ultralytics will fetch it (needs internet)")
    else:
        raise UserError(f"weights {wpath} do not exist; set 'Weights' ({PREFIX}WEIGHTS) in {REGEN_MENU}, or leave it "
                        "empty and set the environment variable YOLO11_POSE_WEIGHTS, to your .pt file (absolute or "
                        f"relative to {project_dir})")

    if s.calib is None:
        raise UserError(f"no calibration images set; set 'Calibration images' ({PREFIX}CALIB) in {REGEN_MENU}, or the "
                        "environment variable YOLO11_POSE_CALIB, to a folder, list file or glob of JPEG/PNG images like "
                        "those the camera sees")
    calib = _abspath(s.calib, project_dir)
    is_glob = any(ch in s.calib for ch in "*?[")

    problem = python_problem(python, python_configured, component_dir)
    if problem:
        raise UserError(problem)

    # The images as `yolo11-pose build` reads them (folder, list file or glob): the build step depends on each.
    from yolo11_pose.make.quantize import resolve_images

    if not is_glob and not calib.exists():
        raise UserError(f"calibration images {calib} do not exist; set {PREFIX}CALIB to a folder, list file or glob "
                        "of JPEG/PNG images")
    files = resolve_images(calib)
    if len(files) < s.num_calib:
        raise UserError(f"{calib} holds {len(files)} calibration images but {PREFIX}NUM_CALIB is {s.num_calib}; add "
                        "images or lower the number")
    depends += [str(f) for f in files]
    if is_glob:
        globs.append(("GLOB_RECURSE" if "**" in s.calib else "GLOB", str(calib)))  # Python crosses folders with **
    elif calib.is_dir():
        globs.append(("GLOB", str(calib / "*")))
    else:
        depends.append(str(calib))
        configure_depends.append(str(calib))  # a changed list re-reads its entries

    s = s.replace(weights=weights, calib=str(calib))
    args = s.cli_args("build")
    if int16_file:
        args[args.index(cfg.setting("int16_layers").option) + 1] = int16_file
    command = [python, "-m", "yolo11_pose.cli", "build", *args, "--out", str(work_dir / "build")]
    comment = f"yolo11_pose: building the {s.imgsz}x{s.imgsz} {s.bits}-bit model for {s.target} from {weights}"
    return {"command": command, "depends": depends, "comment": comment, "globs": globs,
            "configure_depends": configure_depends, "status": status}


def write_outputs(work_dir: Path, step: dict) -> None:
    _write_if_changed(work_dir / "settings.txt", "\n".join(step["command"]) + "\n")
    b = _bracket
    lines = ["# Written by `python -m yolo11_pose.make.cmake_helper regenerate` at configure time; do not edit.",
             "set(_yolo11_pose_command " + " ".join(map(b, step["command"])) + ")",
             "set(_yolo11_pose_depends " + " ".join(map(b, step["depends"])) + ")",
             f"set(_yolo11_pose_comment {b(step['comment'])})"]
    for kind, pattern in step["globs"]:
        lines.append(f"file({kind} _yolo11_pose_listed CONFIGURE_DEPENDS LIST_DIRECTORIES false {b(pattern)})")
    for f in step["configure_depends"]:
        lines.append(f"set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS {b(f)})")
    for msg in step["status"]:
        lines.append(f"message(STATUS {b(msg)})")
    _write_if_changed(work_dir / "regenerate.cmake", "\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m yolo11_pose.make.cmake_helper", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("regenerate", help="check the regeneration settings; write settings.txt and regenerate.cmake")
    p.add_argument("--work-dir", required=True, type=Path)
    p.add_argument("--project-dir", required=True, type=Path)
    p.add_argument("--target", required=True)
    p.add_argument("--python", required=True, help="the interpreter the build step runs (this one)")
    p.add_argument("--python-configured", action="store_true", help="set in menuconfig (not ESP-IDF's own)")
    p.add_argument("--component-dir", required=True)
    p.add_argument("config", nargs="*", help=f"{PREFIX}<NAME>=<value>, as sdkconfig has them")
    a = ap.parse_args(argv)
    config = dict(c.partition("=")[::2] for c in a.config)
    try:
        step = regenerate(config, a.work_dir, a.project_dir, a.target, a.python, a.component_dir,
                          a.python_configured)
        write_outputs(a.work_dir, step)
    except UserError as e:
        print(e)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
