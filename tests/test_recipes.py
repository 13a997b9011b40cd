"""GluonCV 0.10.5's and GluonNLP 0.10.0's training recipes as MXNet 1.9.1 ran them
(tools/record_recipes.py), replayed on both of mxopt's paths.

MXNet ran each recipe's optimizer as ``gluon.Trainer`` does, through
``get_updater(opt)`` called with the lists of every index at every step. The
object path repeats those calls (``mxopt.optimizer.create``, ``get_updater``,
and ``set_learning_rate`` before each step where GluonNLP's BERT scripts call
it); the pytree path is ``mxopt.create`` with MXNet's effective multipliers,
one jitted optax step over a dict of the parameters (the rates set with
``mxopt.set_hyperparams``). Tolerances: float32 rtol 1e-5, atol 1e-6; float16
with master weights one ulp. GluonCV's NAG with momentum and weight decay
meets MXNet's in-place kernel (docs/mxnet_differences.md): its runs are
MXNet's with ``mxnet_quirks=True``, and not without.
"""

import numpy as np
import pytest
from mxnet_divergences import known_mxnet_divergence
from mxnet_fixtures import assert_matches_mxnet, load, mxnet_optimizer, optimizer_kwargs
from trajectory import trajectory

import mxopt
from mxopt import optimizer as mo

RECORDED = load("recipes")
RECIPES = RECORDED["cases"]


def _cases(cases):
    return [pytest.param(case, id=case["id"]) for case in cases]


def _quirky(case: dict) -> bool:
    return known_mxnet_divergence(case) is not None


def _tree(case: dict, values: dict) -> dict[str, np.ndarray]:
    """Recorded values by name as arrays of the case's dtype."""
    return {name: np.asarray(v, case["dtype"]) for name, v in values.items()}


def _assert_run_is_mxnets(case: dict, run: list, path: str):
    """``run``: the weights after each step, by name, against MXNet's."""
    assert len(run) == len(case["weights"])
    for step, (weights, expected) in enumerate(zip(run, case["weights"]), 1):
        for name, want in _tree(case, expected).items():
            assert_matches_mxnet(weights[name], want, pure_float16=False,
                                 what=f"{path}, step {step}, {name}")


def _object_run(case: dict) -> tuple[list, list]:
    """The weights and ``optimizer.learning_rate`` after each of MXNet's Updater calls."""
    optimizer = mxnet_optimizer(case, mxnet_quirks=_quirky(case))
    updater = mo.get_updater(optimizer)
    names, initial = case["names"], _tree(case, case["initial"])
    weights = [initial[n] for n in names]
    run, rates = [], []
    for step, grads in enumerate(case["grads"]):
        if "set_rates" in case:
            optimizer.set_learning_rate(case["set_rates"][step])
        grads = _tree(case, grads)
        weights = updater(list(range(len(names))), [grads[n] for n in names], weights)
        run.append(dict(zip(names, weights)))
        rates.append(optimizer.learning_rate)
    return run, rates


def _pytree(case: dict, mxnet_quirks: bool):
    return mxopt.create(case["optimizer"], **optimizer_kwargs(case), mxnet_quirks=mxnet_quirks)


def _pytree_run(case: dict, tx) -> list:
    return trajectory(tx, _tree(case, case["initial"]), [_tree(case, g) for g in case["grads"]],
                      case.get("set_rates"))


def test_the_recording_covers_the_recipes():
    assert RECORDED["meta"]["mxnet_version"] == "1.9.1"
    kinds = {(c["optimizer"], c["kwargs"].get("lr_scheduler", {}).get("type"),
              "set_rates" in c) for c in RECIPES}
    assert kinds == {("nag", "LRSequential", False), ("sgd", "LRSequential", False),
                     ("bertadam", None, False), ("bertadam", "LRSequential", False),
                     ("bertadam", "PolyScheduler", False), ("bertadam", None, True)}
    for optimizer in ("nag", "sgd", "bertadam"):
        ran = [c for c in RECIPES if c["optimizer"] == optimizer]
        assert {c["dtype"] for c in ran} == {"float32", "float16"}
        assert {c["named"] for c in ran} == {True, False}
        assert all(c["kwargs"].get("multi_precision") for c in ran if c["dtype"] == "float16")
    gluoncv = [c["kwargs"] for c in RECIPES if c["recipe"] == "gluoncv"]
    assert {"learning_rate" in kwargs for kwargs in gluoncv} == {True, False}


@pytest.mark.parametrize("case", _cases(RECIPES))
def test_object_path_runs_as_mxnets_updater(case):
    run, rates = _object_run(case)
    _assert_run_is_mxnets(case, run, "object path")
    np.testing.assert_allclose(rates, case["learning_rates"], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("case", _cases(RECIPES))
def test_pytree_path_runs_as_mxnets_updater(case):
    tx = _pytree(case, mxnet_quirks=_quirky(case))
    _assert_run_is_mxnets(case, _pytree_run(case, tx), "pytree path")
    if "lr_scheduler" in case["kwargs"]:
        # MXNet counts its updates from 1; one count at a time, as the steps ask.
        rates = [tx.learning_rate(n) for n in range(1, len(case["grads"]) + 1)]
        np.testing.assert_allclose(rates, case["learning_rates"], rtol=1e-6, atol=1e-9)


def test_only_nag_with_momentum_and_weight_decay_needs_mxnet_quirks():
    nag = [c for c in RECIPES if c["optimizer"] == "nag"]
    assert all(c["kwargs"]["momentum"] > 0 and c["kwargs"]["wd"] > 0 for c in nag)
    assert [c for c in RECIPES if _quirky(c)] == nag


# In float16 the difference is in the master copies, which float16 weights may round away.
@pytest.mark.parametrize("case", _cases(c for c in RECIPES
                                        if _quirky(c) and c["dtype"] == "float32"))
def test_without_mxnet_quirks_nag_with_weight_decay_is_not_mxnets(case):
    """mxopt's default is NAG's documented recursion, which MXNet's kernel does not compute."""
    with pytest.raises(AssertionError, match="pytree path"):
        _assert_run_is_mxnets(case, _pytree_run(case, _pytree(case, mxnet_quirks=False)),
                              "pytree path")
