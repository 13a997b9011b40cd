"""The public surface: every name documented, no name meaning two things, the code
ruff-clean."""

import inspect
import pathlib
import subprocess
import sys

import pytest

import mxopt
from mxopt.registry import lookup

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", mxopt.__all__)
def test_public_name_has_docstring(name):
    doc = getattr(mxopt, name).__doc__
    assert doc and len(doc.strip()) > 20, name


@pytest.mark.parametrize("name", ["sgd", "nag", "adam", "rescale", "clip", "add_decayed_weights",
                                  "scale_by_learning_rate", "trace", "scale_by_adam",
                                  "multi_precision", "FactorScheduler", "MultiFactorScheduler",
                                  "PolyScheduler", "CosineScheduler"])
def test_formula_is_in_the_docstring(name):
    assert "=" in getattr(mxopt, name).__doc__ or "<-" in getattr(mxopt, name).__doc__


@pytest.mark.parametrize("name", mxopt.registered_names())
def test_optimizer_docstring_gives_formula_and_arguments(name):
    constructor = lookup(name)
    doc = constructor.__doc__
    assert "=" in doc or "<-" in doc, f"{name}: no update formula"
    own = [p.name for p in inspect.signature(constructor).parameters.values()
           if p.kind is not inspect.Parameter.VAR_KEYWORD]
    for arg in own + ["learning_rate", "rescale_grad", "clip_gradient", "wd", "multi_precision"]:
        assert f"{arg}" in doc, f"{name}: argument {arg!r} undocumented"


def test_mxopt_and_mxopt_julia_share_no_name_with_another_kind_of_meaning():
    """A name of both namespaces (``get_updater``, ``Updater``: MXNet's and MXNet.jl's) is
    the same kind of thing in each: never a module in one and a function or class in the
    other (``mxopt.sgd``), nor a helper in one and MXNet.jl's namespace in the other."""
    julia = {name: getattr(mxopt.julia, name) for name in dir(mxopt.julia)
             if not name.startswith("_")}
    for name, value in julia.items():
        if hasattr(mxopt, name):
            ours = getattr(mxopt, name)
            assert inspect.ismodule(ours) == inspect.ismodule(value), name
            assert inspect.isclass(ours) == inspect.isclass(value), name
    assert not hasattr(mxopt, "LearningRate")  # the per-leaf rate is mxopt.LeafRates
    assert {"sgd", "adam", "optimizer", "schedulers"}.isdisjoint(julia)


def test_ruff_clean():
    pytest.importorskip("ruff", reason="ruff comes with the dev extra")
    paths = ["mxopt", "tests", "tools", "benchmarks", "docs", "notebooks"]
    result = subprocess.run([sys.executable, "-m", "ruff", "check", *paths],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
