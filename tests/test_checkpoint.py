"""Checkpoints of the functional state: a run restored at step k continues bit for bit."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from trajectory import bits

import mxopt
from mxopt import checkpoint

STEPS_BEFORE, STEPS_AFTER = 3, 3
# Every registered optimizer, with a schedule, multipliers and float16 and
# bfloat16 weights under multi_precision (SGLD's state holds its PRNG key).
EXTRA = {"groupadagrad": {}, "test": {}, "lbsgd": {"batch_scale": 2, "warmup_epochs": 1,
                                                  "updates_per_epoch": 2}}


def _optimizer(name: str) -> optax.GradientTransformation:
    kwargs = {"lr_scheduler": mxopt.FactorScheduler(step=2, factor=0.7, base_lr=0.05),
              "multi_precision": True, "lr_mult": {"b": 2.0}, "begin_num_update": 4,
              **EXTRA.get(name, {"wd": 1e-3})}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # ccsgd
        return mxopt.create(name, **kwargs)


def _params():
    return {"w": jnp.linspace(-1, 1, 12).reshape(3, 4).astype(jnp.float16),
            "b": jnp.linspace(0.5, 1, 4).reshape(4, 1).astype(jnp.bfloat16),
            "c": jnp.arange(6.0).reshape(2, 3)}


def _assert_identical(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(bits(x), bits(y))


@pytest.mark.parametrize("name", mxopt.registered_names())
def test_restored_run_continues_bit_for_bit(name, tmp_path):
    tx = _optimizer(name)

    @jax.jit
    def step(params, state, k):
        grads = jax.tree.map(lambda p: jnp.sin(p.astype(jnp.float32) * k).astype(p.dtype),
                             params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    params = _params()
    state = tx.init(params)
    for k in range(STEPS_BEFORE):
        params, state = step(params, state, k + 1.0)
    checkpoint.save(tmp_path / "ckpt", (params, state))
    restored = checkpoint.restore(tmp_path / "ckpt", (_params(), tx.init(_params())))
    _assert_identical(restored, (params, state))
    for k in range(STEPS_BEFORE, STEPS_BEFORE + STEPS_AFTER):
        params, state = step(params, state, k + 1.0)
        restored = step(*restored, k + 1.0)
    _assert_identical(restored, (params, state))


def test_typed_keys_numbers_and_templates(tmp_path):
    tree = {"key": jax.random.key(3), "step": 7, "scale": 0.5, "x": jnp.ones(2, jnp.bfloat16)}
    checkpoint.save(tmp_path / "a", tree)
    like = {"key": jax.random.key(0), "step": 0, "scale": 0.0,
            "x": jax.ShapeDtypeStruct((2,), jnp.bfloat16)}
    restored = checkpoint.restore(tmp_path / "a", like)
    _assert_identical({k: restored[k] for k in ("key", "x")}, {k: tree[k] for k in ("key", "x")})
    assert (restored["step"], restored["scale"]) == (7, 0.5)


def test_errors(tmp_path):
    params = _params()
    state = mxopt.adam().init(params)
    path = checkpoint.save(tmp_path / "a", state)
    assert path.is_absolute() and path.is_dir()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        checkpoint.save(tmp_path / "a", state)
    checkpoint.save(tmp_path / "a", state, overwrite=True)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        checkpoint.restore(tmp_path / "missing", state)
    wider = dict(params, c=jnp.ones((2, 4)))
    with pytest.raises(ValueError, match=r"'4/mean/c': float32\[2, 3\] in the checkpoint, "
                                         r"float32\[2, 4\] in `like`"):
        checkpoint.restore(tmp_path / "a", mxopt.adam().init(wider))
    with pytest.raises(ValueError, match="in the checkpoint, absent in `like`"):
        checkpoint.restore(tmp_path / "a", mxopt.sgd(momentum=0.9).init(params))
