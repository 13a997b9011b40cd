"""The docs build with warnings as errors, notebooks executed, and document every public name.

A public name is one in ``mxopt.__all__``, or in a documented submodule's ``__all__`` (where it
has none: a function or class defined there whose name does not start with ``_``). A
submodule's name that is the same object as a top-level ``mxopt`` name is documented once, at
the top level. The build is run once for all the tests here.
"""

import importlib
import json
import pathlib
import subprocess
import sys

import pytest
from sphinx.util.inventory import InventoryFile

import mxopt

# Under pytest-xdist, one worker builds the docs for all of these tests.
pytestmark = pytest.mark.xdist_group("docs_build")

DOCS = pathlib.Path(__file__).parent.parent / "docs"
SUBMODULES = ["checkpoint", "hyperparams", "julia", "multipliers", "mxnet.files",
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


@pytest.fixture(scope="session")  # kept while other modules' tests run between these
def site(tmp_path_factory) -> pathlib.Path:
    """The built HTML; the notebooks' outputs go beside it, in the same temporary folder."""
    html = tmp_path_factory.mktemp("docs") / "html"
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", str(DOCS), str(html)],
        capture_output=True, text=True)
    assert build.returncode == 0, f"sphinx-build failed:\n{build.stdout}\n{build.stderr}"
    return html


@pytest.fixture(scope="session")
def documented(site) -> set[str]:
    inventory = InventoryFile.loads((site / "objects.inv").read_bytes(), uri="")
    data = getattr(inventory, "data", inventory)  # a plain dict before Sphinx 8.2
    return {name for kind, entries in data.items() if kind.startswith("py:") for name in entries}


def test_every_public_name_is_documented(documented):
    top_level = {id(obj): f"mxopt.{name}" for name, obj in vars(mxopt).items()
                 if f"mxopt.{name}" in documented}
    missing = sorted(name for name, obj in public_names().items()
                     if name not in documented and id(obj) not in top_level)
    assert not missing, f"public names without an entry in docs/api/: {missing}"


def test_every_optimizer_has_its_page(site, documented):
    for name in mxopt.registered_names():
        assert (site / "optimizers" / f"{name}.html").is_file(), name
        assert f"mxopt.{mxopt.registry.lookup(name).__name__}" in documented, name


def test_every_tutorial_is_executed(site):
    for notebook in (DOCS.parent / "notebooks").glob("*.ipynb"):
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
