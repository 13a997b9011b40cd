"""Replays trajectories and scheduler values recorded from Apache MXNet 1.9.1.

The fixtures come from tools/record_mxnet.py; no number here is written by
hand. Tolerances: float32 rtol 1e-5, atol 1e-6 at every step; float16
weights with multi_precision within one ulp; pure float16 within 2^-7.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from mxnet_divergences import known_mxnet_divergence, one_index_calls_only
from mxnet_fixtures import (
    assert_matches_mxnet,
    load,
    make_scheduler,
    optimizer_kwargs,
    pure_float16,
    trajectories_of,
)

import mxopt

SCHEDULES = load("schedules")["cases"]


def _cases(kind: str):
    return [pytest.param(c, id=c["id"]) for c in trajectories_of(kind)]


def _build(case: dict, **extra) -> optax.GradientTransformation:
    kwargs = dict(optimizer_kwargs(case), **extra)
    if case["optimizer"] == "sgld":
        # SGLD was recorded with MXNet's noise replaced by zeros: compare the
        # deterministic part, through sgld's documented noise=False.
        kwargs["noise"] = False
    return mxopt.create(case["optimizer"], **kwargs)


def _replay(case: dict, steps: int | None = None, **extra):
    """Yields (step, params, recorded MXNet weights) along a case's trajectory.

    Cases where MXNet raised have no recorded weights; ``steps`` then gives
    how many steps to take, with the weights yielded as ``None``. ``extra``
    are more optimizer arguments (``mxnet_quirks``).
    """
    dtype = jnp.dtype(case["dtype"])
    tx = _build(case, **extra)
    params = {k: jnp.asarray(v, dtype) for k, v in case["initial"].items()}
    state = tx.init(params)

    @jax.jit
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    rng = np.random.default_rng(case["seed"])
    grads_seq = case["grads"] or [
        {k: rng.normal(0, case["grad_scale"], np.shape(v)) for k, v in case["initial"].items()}
        for _ in range(steps or 0)]
    expected_seq = case["weights"] or [None] * len(grads_seq)
    for i, (grads, expected) in enumerate(zip(grads_seq, expected_seq)):
        grads = {k: jnp.asarray(v, dtype) for k, v in grads.items()}
        params, state = step(params, state, grads)
        if expected is not None:
            expected = {k: np.asarray(v, dtype) for k, v in expected.items()}
        yield i + 1, params, expected


@pytest.mark.parametrize("case", _cases("same"))
def test_trajectory_matches_mxnet(case):
    for step, params, expected in _replay(case):
        for name, want in expected.items():
            assert_matches_mxnet(params[name], want, pure_float16=pure_float16(case),
                                 what=f"step {step}, {name}")


@pytest.mark.parametrize("case", [c for c in _cases("divergent")
                                  if not one_index_calls_only(c.values[0])])
def test_mxnet_quirks_reproduce_mxnet(case):
    """Where MXNet's code contradicts its documentation, ``mxnet_quirks=True`` gives its
    numbers; over a pytree, MXNet's per-index calls are the leaves, in order."""
    for step, params, expected in _replay(case, mxnet_quirks=True):
        for name, want in expected.items():
            assert_matches_mxnet(params[name], want, pure_float16=pure_float16(case),
                                 what=f"step {step}, {name}")


def _by_divergence() -> dict[str, list[dict]]:
    cases: dict[str, list[dict]] = {}
    for case in trajectories_of("divergent"):
        cases.setdefault(known_mxnet_divergence(case), []).append(case)
    return cases


@pytest.mark.parametrize("cases", [pytest.param(cases, id=cases[0]["id"])
                                   for cases in _by_divergence().values()])
def test_known_divergence_is_real(cases):
    """Where mxopt follows MXNet's documentation instead, the recorded output does differ:
    in some case of each documented divergence by more than 1e-4. (A case the rule names
    may show less: NAG's weight decay of a tiny rate, say.)"""
    def difference(got, want):  # NaN in MXNet's weights (and not in mxopt's) differs most
        got, want = np.asarray(got, np.float32), want.astype(np.float32)
        return np.where(np.isnan(got) != np.isnan(want), np.inf,
                        np.nan_to_num(np.abs(got - want))).max()

    differences = [difference(params[k], want) for case in cases
                   for _, params, expected in _replay(case) for k, want in expected.items()]
    assert max(differences) > 1e-4, known_mxnet_divergence(cases[0])


@pytest.mark.parametrize("case", _cases("raises"))
def test_runs_where_mxnet_raises(case):
    """Documented arguments MXNet fails on (its error is recorded) train finitely in mxopt,
    or, float16 weights whose dtype rounds a decay rate to 1 or epsilon to 0, are refused
    when the state is made, naming the argument and the leaf."""
    assert case["mxnet_error"]
    replay = _replay(case, steps=12)
    try:
        first = next(replay)
    except ValueError as error:
        assert pure_float16(case), error
        assert re.search(r"(beta1|beta2|epsilon)=\S+ is [01] in float16, the dtype of leaf "
                         r"\['\w+'\]", str(error)), error
        return
    for step, params, _ in [first, *replay]:
        for name, leaf in params.items():
            assert np.isfinite(np.asarray(leaf, np.float32)).all(), f"step {step}, {name}"


@pytest.mark.parametrize("case", SCHEDULES, ids=[c["id"] for c in SCHEDULES])
def test_scheduler_matches_mxnet(case):
    scheduler = make_scheduler(case["scheduler"])
    got = jax.jit(jax.vmap(scheduler))(jnp.asarray(case["counts"]))
    np.testing.assert_allclose(got, np.asarray(case["values"], np.float32), rtol=1e-5, atol=1e-9)
