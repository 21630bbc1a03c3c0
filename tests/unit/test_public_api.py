"""The public surface: __all__, seed imports, dependencies, typing marker, logging."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.resources
import logging
import pkgutil
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

import eventrabbit

PACKAGE_DIR = Path(eventrabbit.__file__).resolve().parent
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
MODULES = sorted(f"eventrabbit.{info.name}" for info in pkgutil.iter_modules([str(PACKAGE_DIR)]))

#: Names the seed README imports from the package; they must stay importable.
SEED_NAMES = ["ExchangeType", "RetryConfig", "build_event_dependencies"]


def _public_names(module: ModuleType) -> set[str]:
    """What a module offers: its names not starting with ``_``, without submodules."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, ModuleType) and name != "annotations"
    }


def _library_modules() -> list[ModuleType]:
    """Every module of the library proper (not eventrabbit.testing)."""
    return [importlib.import_module(name) for name in MODULES]


def _relative(path: Path) -> str:
    return path.relative_to(PACKAGE_DIR).as_posix()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match is not None, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def test_all_is_exactly_what_the_package_offers() -> None:
    # httpx's way: a name imported into __init__ without being exported (or exported without
    # being there) fails here, so __all__ cannot drift from the package.
    assert set(eventrabbit.__all__) == _public_names(eventrabbit)
    assert len(eventrabbit.__all__) == len(set(eventrabbit.__all__))
    assert set(SEED_NAMES) <= set(eventrabbit.__all__)


@pytest.mark.parametrize("name", sorted(eventrabbit.__all__))
def test_every_public_name_is_importable(name: str) -> None:
    assert getattr(eventrabbit, name) is not None
    namespace: dict[str, object] = {}
    exec(f"from eventrabbit import {name}", namespace)
    assert namespace[name] is getattr(eventrabbit, name)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from eventrabbit import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(eventrabbit.__all__)


def test_every_exception_of_the_library_lives_in_errors_and_is_exported() -> None:
    defined = {
        value
        for module in _library_modules()
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__.startswith("eventrabbit")
    }
    assert {cls.__module__ for cls in defined} == {"eventrabbit.errors"}
    assert {cls.__name__ for cls in defined} <= set(eventrabbit.__all__)
    assert all(issubclass(cls, eventrabbit.EventRabbitError) for cls in defined)


def _drawn_tree() -> list[tuple[int, str]]:
    """(indent, class name) of each line of the tree drawn in errors.py's docstring."""
    from eventrabbit import errors

    block = (errors.__doc__ or "").split("::\n\n", 1)[1].split("\n\n", 1)[0]
    lines = []
    for line in block.splitlines():
        match = re.match(r"^([ │├└─]*)(\w+)", line)
        assert match is not None, line
        lines.append((len(match.group(1)), match.group(2)))
    return lines


def test_the_drawn_tree_names_every_exception_under_a_parent_class() -> None:
    from eventrabbit import errors

    classes = {
        name: value
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.EventRabbitError)
    }
    tree = _drawn_tree()
    assert sorted(name for _, name in tree) == sorted(classes)
    for index, (indent, name) in enumerate(tree[1:], start=1):
        # The drawn parent is the nearest line above that is indented less.
        parent = next(n for i, n in reversed(tree[:index]) if i < indent)
        assert classes[parent] in classes[name].__bases__, f"{name} is drawn under {parent}"


def test_seed_imports_work() -> None:
    from eventrabbit import ExchangeType, RetryConfig, build_event_dependencies
    from eventrabbit.common import (
        ConsumeChannel,
        QueueConfig,
        QueueResponse,
    )
    from eventrabbit.common import ExchangeType as CommonExchangeType
    from eventrabbit.common import RetryConfig as CommonRetryConfig

    assert callable(build_event_dependencies)
    assert CommonExchangeType is ExchangeType
    assert CommonRetryConfig is RetryConfig
    assert eventrabbit.ConsumeChannel is ConsumeChannel
    assert eventrabbit.QueueConfig is QueueConfig
    assert eventrabbit.QueueResponse is QueueResponse


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports(module: str) -> None:
    importlib.import_module(module)


def test_importing_eventrabbit_pulls_in_neither_aio_pika_nor_pydantic() -> None:
    code = (
        "import eventrabbit, sys; "
        "import eventrabbit.common, eventrabbit.consumer, eventrabbit.handle; "
        "print('aio_pika' in sys.modules, 'pydantic' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert result.stdout.split() == ["False", "False"]


def test_source_never_imports_aio_pika_or_pydantic() -> None:
    pattern = re.compile(r"^\s*(import|from)\s+(aio_pika|pydantic)\b", re.MULTILINE)
    for path in PACKAGE_DIR.rglob("*.py"):
        assert not pattern.search(path.read_text()), path.name


def test_package_ships_py_typed() -> None:
    marker = importlib.resources.files("eventrabbit").joinpath("py.typed")
    assert marker.is_file()
    config = tomllib.loads(PYPROJECT.read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["eventrabbit"]


def test_pyproject_runtime_dependencies_are_exactly_aiormq_orjson_yarl() -> None:
    config = tomllib.loads(PYPROJECT.read_text())
    names = sorted(_requirement_name(dep) for dep in config["project"]["dependencies"])
    assert names == ["aiormq", "orjson", "yarl"]


def test_installed_metadata_runtime_dependencies_match() -> None:
    requires = importlib.metadata.requires("eventrabbit") or []
    runtime = sorted(_requirement_name(r) for r in requires if "extra ==" not in r)
    assert runtime == ["aiormq", "orjson", "yarl"]


def test_requires_python_3_11() -> None:
    config = tomllib.loads(PYPROJECT.read_text())
    assert config["project"]["requires-python"] == ">=3.11"


@pytest.mark.parametrize("name", ["eventrabbit", *MODULES])
def test_library_loggers_have_no_handlers_and_no_level(name: str) -> None:
    importlib.import_module(name)
    logger = logging.getLogger(name)
    assert logger.handlers == []
    assert logger.level == logging.NOTSET
    assert logger.propagate is True


#: The ``eventrabbit`` command is an application, not the library: configuring logging (its
#: ``--log-level`` and ``--log-format``) is its job.
APPLICATION = PACKAGE_DIR / "cli"
LIBRARY_FILES = sorted(p for p in PACKAGE_DIR.rglob("*.py") if APPLICATION not in p.parents)


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=_relative)
def test_no_module_configures_logging(path: Path) -> None:
    source = path.read_text()
    for forbidden in ("setLevel", "addHandler", "basicConfig", "StreamHandler"):
        assert forbidden not in source, f"{path.name} uses {forbidden}"


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=_relative)
def test_module_loggers_live_under_eventrabbit(path: Path) -> None:
    source = path.read_text()
    for match in re.finditer(r"getLogger\(([^)]*)\)", source):
        assert match.group(1) == "__name__", f"{path.name}: getLogger({match.group(1)})"
