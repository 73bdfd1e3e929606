"""pytest-embedded glue for the test apps (pytest_*.py next to each app).

Board runs (after `idf-build-apps build`, see .idf_build_apps.toml)::

    pytest test_apps --target esp32p4 --embedded-services esp,idf
    pytest test_apps --target linux --embedded-services idf          # core_unity as a host executable
    pytest test_apps --target esp32s3 --embedded-services idf,qemu   # core_unity in Espressif's QEMU

- ``--target X`` keeps only the tests marked ``X`` (the others are deselected), like ESP-IDF's own conftest; tests
  marked ``qemu`` are kept only when ``--embedded-services`` includes ``qemu`` (and board tests only when not).
- Without ``--target`` (plain ``python -m pytest`` at the repository root, as CI runs it) every test here is skipped
  with a reason: they need a board or an ESP-IDF build. Collection itself needs neither ESP-IDF nor a board.
- The build folder is ``<app>/build_<target>_<config>`` (idf-build-apps' ``build_@t_@w``), falling back to
  ``build_<target>`` and ``build`` for apps built by hand with ``idf.py``.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TARGET_MARKERS = ("esp32p4", "esp32s3", "linux")
DEFAULT_CONFIG = "default"


def _in_test_apps(item, root: Path = HERE) -> bool:
    return root in Path(str(item.fspath)).resolve().parents


def _item_targets(item) -> set[str]:
    return {t for t in TARGET_MARKERS if item.get_closest_marker(t) is not None}


def _requested_target(config) -> str | None:
    t = config.getoption("target", None)  # pytest-embedded's option; None when the plugin is absent
    return None if t in (None, "", "auto") else str(t).lower()


def _qemu_requested(config) -> bool:
    services = config.getoption("embedded_services", None) or ""
    return "qemu" in [s.strip() for s in str(services).replace("|", ",").split(",")]


def pytest_collection_modifyitems(config, items):
    select_items(config, items, HERE)


def select_items(config, items, root: Path) -> None:
    """The rules above for the board tests under root (examples/conftest.py applies them to the examples)."""
    # conftest hooks see the whole session's items: leave everything outside root alone.
    target = _requested_target(config)
    qemu = _qemu_requested(config)
    keep, drop = [], []
    for item in items:
        if not _in_test_apps(item, root):
            keep.append(item)
            continue
        if target is None:
            item.add_marker(pytest.mark.skip(
                reason="needs a board or an ESP-IDF build: run `pytest test_apps examples --target "
                       "esp32p4|esp32s3|linux --embedded-services esp,idf` after `idf-build-apps build` (see README)"))
            keep.append(item)
        elif target in _item_targets(item) and (item.get_closest_marker("qemu") is not None) == qemu:
            # QEMU variants run only with the qemu service, board variants only without it.
            keep.append(item)
        else:
            drop.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture
def config(request) -> str:
    """sdkconfig.ci.<config> name; tests pick one with @pytest.mark.parametrize('config', [...], indirect=True)."""
    return getattr(request, "param", None) or DEFAULT_CONFIG


def resolve_build_dir(app_path: str | Path, target: str, config: str) -> Path:
    """The app's build folder for target/config. The default config also accepts `build_<target>` and `build`
    (apps built by hand with idf.py); another config that was not built is skipped, a missing default fails."""
    app = Path(app_path)
    names = [f"build_{target}_{config}"]
    if config == DEFAULT_CONFIG:
        names += [f"build_{target}", "build"]
    for name in names:
        if (app / name).is_dir():
            return app / name
    how = f"`idf-build-apps build -p {app} --target {target}` (from the repository root)"
    if config != DEFAULT_CONFIG:
        pytest.skip(f"{app.name} was not built in its '{config}' configuration for {target}; build it with {how}")
    pytest.fail(f"no build of {app.name} for {target}: expected {app / names[0]}; build it with {how}", pytrace=False)


@pytest.fixture
def build_dir(request, app_path, target, config) -> str:
    """Overrides pytest-embedded's fixture (a path relative to app_path) with the idf-build-apps layout."""
    return resolve_build_dir(os.path.abspath(app_path), target, config).name


@pytest.fixture
def build_path(app_path, build_dir) -> Path:
    """Absolute path of the build folder in use."""
    return Path(app_path).resolve() / build_dir
