"""The README's demo trains and the loss falls."""

from mxopt import demo


def test_demo_loss_falls(capsys):
    for name in demo.RECIPES:
        losses, accuracy, _ = demo.train(name, steps=60, log_every=0)
        assert losses[-1] < 0.3 * losses[0], name
        assert accuracy > 0.9, name


def test_demo_main_prints_table(capsys):
    demo.main(["--steps", "20", "--optimizers", "sgd"])
    out = capsys.readouterr().out
    assert "final loss" in out and "sgd" in out
