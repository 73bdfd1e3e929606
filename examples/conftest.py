"""pytest-embedded glue for the examples (examples/*/pytest_*.py): the test apps' rules and fixtures, from
test_apps/conftest.py. Board runs, after `idf-build-apps build` (both folders are in .idf_build_apps.toml)::

    pytest examples --target esp32p4 --embedded-services esp,idf

Without --target (plain `python -m pytest` at the repository root, as CI runs it) every board test here is skipped
with a reason, as under test_apps/.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("yolo11_pose_test_apps_conftest",
                                               HERE.parent / "test_apps" / "conftest.py")
_apps = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_apps)

# The same fixtures: the sdkconfig.ci configuration, and the idf-build-apps build folder.
config = _apps.config
build_dir = _apps.build_dir
build_path = _apps.build_path


def pytest_collection_modifyitems(config, items):  # noqa: F811 (the hook's argument, not the fixture)
    _apps.select_items(config, items, HERE)
