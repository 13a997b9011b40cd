"""The public surface: every name documented, the code ruff-clean."""

import pathlib
import subprocess
import sys

import pytest

import mxopt

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


def test_ruff_clean():
    pytest.importorskip("ruff", reason="ruff comes with the dev extra")
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "mxopt", "tests", "tools"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
