"""The README's demo: every recipe learns the digits, and the command prints its table and
writes its PNG."""

import subprocess
import sys

import numpy as np
import pytest

from mxopt import __main__ as cli
from mxopt import demo

pytest.importorskip("sklearn", reason="the demo needs the demo extra")


@pytest.mark.parametrize("name", list(demo.RECIPES))
def test_every_recipe_learns_the_digits(name):
    result = demo.train(name, steps=300, progress=False)
    assert result.losses.shape == (300,)
    assert result.losses[-20:].mean() < 0.15 * result.losses[:5].mean(), name
    assert result.accuracy > 0.9, name  # 10 classes: chance is 0.1
    assert result.step_ms > 0 and result.compile_s > 0


def test_the_recipes_reprs_are_their_mxnet_calls():
    result = demo.train("sgd", steps=2, progress=False)
    assert repr(result.optimizer) == (
        "sgd(momentum=0.9, wd=0.0001, rescale_grad=0.015625, "
        "wd_mult={'dense0/bias': 0.0, 'dense1/bias': 0.0}, "
        "lr_scheduler=FactorScheduler(base_lr=0.1, step=500, factor=0.5))")


def test_digits_split():
    (x, y), (x_test, y_test) = demo.load_digits()
    assert x.shape == (1437, 64) and x_test.shape == (360, 64)
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert sorted(np.unique(np.asarray(y))) == list(range(10))


def test_command_prints_the_table_and_writes_the_png(tmp_path):
    out = tmp_path / "demo.png"
    result = subprocess.run(
        [sys.executable, "-m", "mxopt", "demo", "--steps", "40", "--optimizers", "sgd", "adam",
         "--output", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("recipe")))
    assert lines[header].split() == ["recipe", "final", "loss", "test", "accuracy", "ms/step",
                                     "compile", "s"]
    rows = [line.split() for line in lines[header + 1:header + 3]]
    assert [row[0] for row in rows] == ["sgd", "adam"]
    for row in rows:
        assert 0 < float(row[1]) < 2.3  # below chance's log(10)
        assert 0.1 < float(row[2]) <= 1.0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    assert "sgd" in result.stderr  # tqdm's progress bar


def test_the_figure_labels_each_recipe_with_its_test_accuracy(tmp_path, monkeypatch):
    import matplotlib.figure

    labels, save = [], matplotlib.figure.Figure.savefig

    def saved(figure, *args, **kwargs):
        labels.extend(text.get_text() for ax in figure.axes if ax.get_legend()
                      for text in ax.get_legend().get_texts())
        return save(figure, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", saved)
    result = demo.train("sgd", steps=20, progress=False)
    demo.plot([result], str(tmp_path / "demo.png"))
    assert labels == [f"sgd: test accuracy {result.accuracy:.1%}", "sgd"]  # losses, rates


def test_missing_extras_name_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn raises ImportError
    with pytest.raises(SystemExit, match=r'scikit-learn: pip install scikit-learn$'):
        demo.main(["--steps", "1"])


def test_cli_usage(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train"])
    assert exit_.value.code == 2 and "usage: mxopt demo" in capsys.readouterr().err
    cli.main(["--help"])
    assert "usage: mxopt demo" in capsys.readouterr().out
