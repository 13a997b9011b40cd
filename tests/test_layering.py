"""mxopt's modules import one another in layers: no cycles, and the core below the
compatibility layers (docs/DESIGN: data flows down, never up).

The import graph is read from the source (every ``import``, at module level
or inside a function); package ``__init__`` files only re-export, and are
left out of it.
"""

import ast
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).parent.parent / "mxopt"
# MXNet's object surface and files, MXNet.jl's surface, GluonCV's schedulers, Gluon's
# Trainer, and the demo built on everything.
COMPATIBILITY = ("mxopt.mxnet", "mxopt.julia", "mxopt.optimizer", "mxopt.gluoncv", "mxopt.gluon",
                 "mxopt.demo", "mxopt.__main__")


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
PACKAGES = {name for name, path in MODULES.items() if path.name == "__init__.py"}


def _imported(name: str) -> set[str]:
    """The mxopt modules ``name`` imports (a ``from package import module`` names the module)."""
    path = MODULES[name]
    package = name if name in PACKAGES else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[:len(package.split(".")) - node.level + 1],
                                 *([base] if base else [])])
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {module for module in found if module in MODULES and module != name}


GRAPH = {name: _imported(name) - PACKAGES for name in MODULES if name not in PACKAGES}
# Users of the public surface, ``import mxopt`` and all (the demo).
WHOLE_PACKAGE_USERS = {name for name in GRAPH if "mxopt" in _imported(name)}


def _reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for module in GRAPH.get(todo.pop(), ()):
            if module not in seen:
                seen.add(module)
                todo.append(module)
    return seen


def _is_compatibility(module: str) -> bool:
    return any(module == layer or module.startswith(layer + ".") for layer in COMPATIBILITY)


def test_the_graph_is_read():
    assert GRAPH["mxopt.mxnet.updater"] >= {"mxopt.mxnet.objects", "mxopt.mxnet.importer"}
    assert "mxopt.base" in GRAPH["mxopt.registry"] and len(GRAPH) > 40


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_module_imports_itself_through_others(module):
    cycle = sorted(m for m in GRAPH[module] if module in _reachable(m) | {m})
    assert not cycle, f"{module} imports {cycle}, which import {module} back"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if not _is_compatibility(m)))
def test_the_core_imports_no_compatibility_layer(module):
    assert not sorted(filter(_is_compatibility, _reachable(module)))


def test_every_module_imports_alone():
    """Each module, imported first in an interpreter where the ``mxopt`` package runs none of
    its ``__init__``, brings in what it needs itself: no import order makes it work."""
    alone = sorted(set(GRAPH) - WHOLE_PACKAGE_USERS)
    assert WHOLE_PACKAGE_USERS == {"mxopt.demo"}
    script = f"""
import importlib, sys, traceback, types
failed = []
for name in {alone!r}:
    for loaded in [m for m in sys.modules if m == "mxopt" or m.startswith("mxopt.")]:
        del sys.modules[loaded]
    package = types.ModuleType("mxopt")
    package.__path__ = [{str(PACKAGE)!r}]
    sys.modules["mxopt"] = package
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc(limit=-3))
print("\\n".join(failed))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=300)
    assert not run.stdout.strip(), run.stdout
