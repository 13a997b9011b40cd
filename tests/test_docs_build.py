"""The docs build with warnings as errors, notebooks executed, and document every public name.

A public name is one in ``mxopt.__all__``, or in a documented submodule's ``__all__`` (where it
has none: a function or class defined there whose name does not start with ``_``). A
submodule's name that is the same object as a top-level ``mxopt`` name is documented once, at
the top level.
"""

import importlib
import json
import pathlib
import subprocess
import sys

from sphinx.util.inventory import InventoryFile

import mxopt

DOCS = pathlib.Path(__file__).parent.parent / "docs"
SUBMODULES = ["checkpoint", "gluoncv", "hyperparams", "julia", "multipliers", "mxnet.files",
              "mxnet.importer", "mxnet.unpickler", "optimizer", "optimizers", "packing",
              "plotting", "precision", "reading", "registry", "schedules", "sharding",
              "structure", "transforms"]


def public_names() -> dict[str, object]:
    """Every public dotted name, and the object it names."""
    names = {f"mxopt.{name}": getattr(mxopt, name) for name in mxopt.__all__}
    for short in SUBMODULES:
        module = importlib.import_module(f"mxopt.{short}")
        exported = getattr(module, "__all__", None) or [
            name for name, value in vars(module).items()
            if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__]
        names.update({f"{module.__name__}.{name}": getattr(module, name) for name in exported})
    return names


def build(html: pathlib.Path) -> set[str]:
    """Builds the docs into ``html`` (the notebooks' outputs go beside it) and returns the
    Python names its inventory documents."""
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", str(DOCS), str(html)],
        capture_output=True, text=True)
    assert done.returncode == 0, f"sphinx-build failed:\n{done.stdout}\n{done.stderr}"
    inventory = InventoryFile.loads((html / "objects.inv").read_bytes(), uri="")
    data = getattr(inventory, "data", inventory)  # a plain dict before Sphinx 8.2
    return {name for kind, entries in data.items() if kind.startswith("py:") for name in entries}


# One test for the one build, so that one pytest-xdist worker builds and the others go on.
def test_the_build_documents_every_public_name_optimizer_and_tutorial(tmp_path):
    site = tmp_path / "html"
    documented = build(site)
    top_level = {id(obj): f"mxopt.{name}" for name, obj in vars(mxopt).items()
                 if f"mxopt.{name}" in documented}
    missing = sorted(name for name, obj in public_names().items()
                     if name not in documented and id(obj) not in top_level)
    assert not missing, f"public names without an entry in docs/api/: {missing}"
    for name in mxopt.registered_names():  # a page each, documenting its constructor
        assert (site / "optimizers" / f"{name}.html").is_file(), name
        assert f"mxopt.{mxopt.registry.lookup(name).__name__}" in documented, name
    for notebook in (DOCS.parent / "notebooks").glob("*.ipynb"):  # executed at the build
        page = (site / "tutorials" / f"{notebook.stem}.html").read_text()
        assert "cell_output" in page, f"{notebook.name} has no outputs in the docs"


def test_notebooks_are_committed_without_outputs():
    notebooks = sorted((DOCS.parent / "notebooks").glob("*.ipynb"))
    assert len(notebooks) >= 4
    for notebook in notebooks:
        cells = json.loads(notebook.read_text())["cells"]
        code = [cell for cell in cells if cell["cell_type"] == "code"]
        assert code, notebook.name
        assert not any(cell["outputs"] or cell["execution_count"] for cell in code), notebook.name
