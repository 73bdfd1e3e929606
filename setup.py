"""Wheel build step that pyproject.toml cannot express: bundle the component's C++ sources with the package.

The twin compiles them on the user's machine (yolo11_pose/cpp.py). They live once in the repository, at its root
where ESP-IDF wants them (include/, src/); the wheel gets a copy under yolo11_pose/device/host/component/. An editable
install reads them from the checkout instead.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
COMPONENT_SOURCES = ("include", "src")


class BuildPyWithComponent(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        dest = Path(self.build_lib) / "yolo11_pose" / "device" / "host" / "component"
        for d in COMPONENT_SOURCES:
            if not (ROOT / d).is_dir():
                raise SystemExit(f"{ROOT / d} is missing: the wheel needs the component's C++ sources")
            shutil.copytree(ROOT / d, dest / d, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.o", "*.a", "__pycache__"))


setup(cmdclass={"build_py": BuildPyWithComponent})
