"""The shape of ``eventrabbit.testing``: an acyclic import graph, in the documented order,
built by composition.

Imports are read from the source with ``ast``, so those under ``if TYPE_CHECKING:`` (and any
inside functions) count as much as the module-level ones.
"""

from __future__ import annotations

import ast
import graphlib
import re
from pathlib import Path

import pytest

import eventrabbit.testing

PACKAGE = "eventrabbit.testing"
PACKAGE_DIR = Path(eventrabbit.testing.__file__).resolve().parent
MODULES = sorted(path.stem for path in PACKAGE_DIR.glob("*.py") if path.stem != "__init__")


def _tree(module: str) -> ast.Module:
    return ast.parse((PACKAGE_DIR / f"{module}.py").read_text())


def _imported(module: str) -> set[str]:
    """The sibling modules ``module`` imports, however and wherever it imports them."""
    found: set[str] = set()
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:  # from .x import ..., from . import x
                names = [node.module] if node.module else [a.name for a in node.names]
            elif node.level == 0 and node.module and node.module.startswith(PACKAGE + "."):
                names = [node.module.removeprefix(PACKAGE + ".")]
            else:
                continue
        elif isinstance(node, ast.Import):
            names = [
                a.name.removeprefix(PACKAGE + ".")
                for a in node.names
                if a.name.startswith(PACKAGE + ".")
            ]
        else:
            continue
        found.update(name.split(".")[0] for name in names)
    return found & set(MODULES)


GRAPH = {module: _imported(module) for module in MODULES}


def test_the_parser_sees_type_checking_imports() -> None:
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .channel import X\n"
    tree = ast.parse(source)
    found = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1]
    assert found == ["channel"]


def test_the_import_graph_is_acyclic() -> None:
    try:
        order = list(graphlib.TopologicalSorter(GRAPH).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle in {PACKAGE}: {' -> '.join(exc.args[1])}")
    assert sorted(order) == MODULES


def test_the_package_docstring_lists_the_modules_bottom_up() -> None:
    doc = eventrabbit.testing.__doc__ or ""
    listed = re.findall(r"``(\w+)``", doc.split("from the bottom up", 1)[1])
    listed = [name for name in listed if name in GRAPH]
    assert sorted(listed) == MODULES, "every module is listed once"
    for position, module in enumerate(listed):
        later = GRAPH[module] & set(listed[position:])
        assert not later, f"{module} imports {sorted(later)}, listed after it"


@pytest.mark.parametrize("module", ["__init__", *MODULES])
def test_every_module_says_what_it_holds(module: str) -> None:
    docstring = ast.get_docstring(_tree(module))
    assert docstring, f"{module} has no module docstring"


def test_no_class_is_the_base_of_a_single_subclass() -> None:
    classes = {
        node.name: module
        for module in MODULES
        for node in ast.walk(_tree(module))
        if isinstance(node, ast.ClassDef)
    }
    subclasses: dict[str, list[str]] = {}
    for module in MODULES:
        for node in ast.walk(_tree(module)):
            if isinstance(node, ast.ClassDef):
                for base in node.bases:
                    if isinstance(base, ast.Name) and base.id in classes:
                        subclasses.setdefault(base.id, []).append(node.name)
    single = {base: subs for base, subs in subclasses.items() if len(subs) == 1}
    assert not single, f"bases with one subclass (use composition): {single}"


@pytest.mark.parametrize("module", MODULES)
def test_no_abstract_method_raises_not_implemented(module: str) -> None:
    raised = [
        node
        for node in ast.walk(_tree(module))
        if isinstance(node, ast.Raise)
        and isinstance(node.exc, ast.Name | ast.Call)
        and "NotImplementedError" in ast.unparse(node.exc)
    ]
    assert not raised
