"""The library's layout, read from its source with ``ast`` (nothing is imported): the core
never imports what sits above it, its modules import each other without a cycle, and every
module stays small (DESIGN.md: one concern per module).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "eventrabbit"
PACKAGE_DIR = Path(__file__).resolve().parents[2] / PACKAGE
#: What sits above the library and may import it, never the other way round.
ABOVE_THE_LIBRARY = ("testing", "contrib", "cli")
#: DESIGN.md asks for about 250 lines a module; this is the hard limit.
MAX_LINES = 260
#: Modules over the limit today: the library breaks its own rule there (strict xfails, to be
#: removed as each is split).
OVER_THE_LIMIT_TODAY: dict[str, int] = {}


def module_name(path: Path) -> str:
    """``eventrabbit/testing/broker.py`` -> ``eventrabbit.testing.broker``."""
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


#: ``python -m eventrabbit``: the command's entry point, which nothing imports; it sits above
#: the library like ``cli/`` itself.
ENTRY_POINT = "__main__.py"


def files(*, testing: bool) -> list[Path]:
    """The core's modules (``eventrabbit/*.py``), or those of ``eventrabbit/testing/``."""
    folder = PACKAGE_DIR / "testing" if testing else PACKAGE_DIR
    return sorted(path for path in folder.glob("*.py") if path.name != ENTRY_POINT)


def above(name: str) -> list[Path]:
    """The modules of ``eventrabbit/<name>/`` (``cli``, ``contrib``)."""
    return sorted((PACKAGE_DIR / name).glob("*.py"))


def is_module(name: str) -> bool:
    """Whether ``name`` (``eventrabbit.x.y``) is a module or package of the library."""
    path = PACKAGE_DIR.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports(path: Path) -> Iterator[str]:
    """Every library module ``path`` imports, anywhere in it: at the top, under
    ``TYPE_CHECKING`` or inside a function. ``from pkg import sub`` counts as ``pkg.sub`` when
    ``sub`` is a module, else as ``pkg``; the parent package a relative import passes through
    is not counted (importing ``pkg.sub`` runs ``pkg/__init__`` anyway, for every module)."""
    own = module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            names = [
                f"{source}.{alias.name}" if is_module(f"{source}.{alias.name}") else source
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                yield name


def graph(paths: list[Path]) -> dict[str, set[str]]:
    """Module -> the library modules it imports (itself left out)."""
    return {
        module_name(path): {name for name in imports(path) if name != module_name(path)}
        for path in paths
    }


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (``a -> b -> a``) among the modules of ``edges``, or ``None``."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done or node not in edges:
            return None
        for target in sorted(edges[node]):
            found = visit(target, [*path, node])
            if found:
                return found
        done.add(node)
        return None

    for start in sorted(edges):
        found = visit(start, [])
        if found:
            return found
    return None


# ---------------------------------------------------------------------------- the checks


def test_the_walk_sees_the_library() -> None:
    core = graph(files(testing=False))
    assert {"eventrabbit", "eventrabbit.handle", "eventrabbit.errors"} <= set(core)
    # It sees relative imports, names and submodules alike.
    assert "eventrabbit.errors" in core["eventrabbit"]
    assert "eventrabbit.envelope" in core["eventrabbit.consumer"]  # from . import envelope
    assert "eventrabbit.connection" in core["eventrabbit.handle"]  # from .connection import ...
    testing = graph(files(testing=True))
    assert "eventrabbit.connection" in testing["eventrabbit.testing"]  # from ..connection


@pytest.mark.parametrize("path", files(testing=False), ids=lambda p: p.name)
def test_the_core_never_imports_what_sits_above_it(path: Path) -> None:
    above = tuple(f"{PACKAGE}.{name}" for name in ABOVE_THE_LIBRARY)
    inside = tuple(f"{name}." for name in above)
    wrong = sorted(name for name in imports(path) if name in above or name.startswith(inside))
    assert not wrong, f"{path.name} imports {wrong}"


def test_the_cores_modules_import_each_other_without_a_cycle() -> None:
    found = cycle(graph(files(testing=False)))
    assert found is None, "import cycle: " + " -> ".join(found or [])


def test_the_testing_package_imports_without_a_cycle() -> None:
    found = cycle(graph(files(testing=False) + files(testing=True)))
    assert found is None, "import cycle: " + " -> ".join(found or [])


def test_the_entry_point_only_starts_the_command() -> None:
    imported = set(imports(PACKAGE_DIR / ENTRY_POINT))
    assert imported, "it starts the command"
    assert all(name.startswith(f"{PACKAGE}.cli") for name in imported), imported


@pytest.mark.parametrize("name", ["cli", "contrib"])
def test_what_sits_above_imports_without_a_cycle(name: str) -> None:
    found = cycle(graph(files(testing=False) + above(name)))
    assert found is None, "import cycle: " + " -> ".join(found or [])


def test_cycle_finds_a_cycle() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert cycle({"a": {"a.x"}}) is None  # a module outside the graph ends a path


def _line_params() -> list[object]:
    params: list[object] = []
    for path in files(testing=False) + files(testing=True) + above("cli") + above("contrib"):
        key = path.relative_to(PACKAGE_DIR).as_posix()
        marks = []
        if key in OVER_THE_LIMIT_TODAY:
            marks.append(
                pytest.mark.xfail(
                    strict=True,
                    reason=f"{key} has {OVER_THE_LIMIT_TODAY[key]} lines: split it by concern "
                    "(remove this mark when it passes)",
                )
            )
        params.append(pytest.param(path, id=key, marks=marks))
    return params


@pytest.mark.parametrize("path", _line_params())
def test_every_module_is_at_most_260_lines(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE_DIR)} has {lines} lines"
