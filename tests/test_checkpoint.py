"""Checkpoints of the functional state: a run restored at step k continues bit for bit."""

import pathlib
import shutil
import signal
import subprocess
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
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


# A save interrupted at any moment leaves a checkpoint: the old one or the new one.

class Crash(BaseException):
    """A process dying at this point (not an Exception: nothing catches it)."""


def _tree(value):
    return {"w": jnp.full((3,), value, jnp.float32), "count": jnp.int32(value)}


def _restored_value(path):
    return int(checkpoint.restore(path, _tree(0))["count"])


def _leftovers(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir() if p.name != "ckpt")


@pytest.mark.parametrize("crash_at", ["write", 0, 1, 2])
def test_save_interrupted_at_each_step_leaves_a_checkpoint(crash_at, tmp_path, monkeypatch):
    """A replacing save made to fail in Orbax's write, then at each of its file-system steps
    (rename the old aside, rename the new into place, remove the old): the old or the new
    checkpoint restores, and the next save tidies up."""
    path = tmp_path / "ckpt"
    checkpoint.save(path, _tree(1))
    steps = []

    def step(real):
        def crashing(*args, **kwargs):
            steps.append(real.__qualname__)
            if crash_at == "write" or len(steps) - 1 == crash_at:
                raise Crash
            return real(*args, **kwargs)
        return crashing

    with monkeypatch.context() as patch:
        if crash_at == "write":
            patch.setattr(ocp.StandardCheckpointer, "save", step(ocp.StandardCheckpointer.save))
        patch.setattr(pathlib.Path, "rename", step(pathlib.Path.rename))
        patch.setattr(shutil, "rmtree", step(shutil.rmtree))
        with pytest.raises(Crash):
            checkpoint.save(path, _tree(2), overwrite=True)
    assert _restored_value(path) == (2 if crash_at == 2 else 1), steps
    checkpoint.save(path, _tree(3), overwrite=True)
    assert _restored_value(path) == 3 and _leftovers(tmp_path) == []


KILLED_SAVER = """
import sys
import jax.numpy as jnp
from mxopt import checkpoint
path = sys.argv[1]
print("ready", flush=True)
for value in range(2, 10**6):
    checkpoint.save(path, {"w": jnp.full((3,), value, jnp.float32), "count": jnp.int32(value)},
                    overwrite=True)
    print(value, flush=True)
"""


def test_killed_saves_leave_a_checkpoint(tmp_path):
    """SIGKILL at random moments of a loop of replacing saves: the last or the one being
    written restores, and saving again works."""
    path = tmp_path / "ckpt"
    checkpoint.save(path, _tree(1))
    rng = np.random.default_rng(0)
    for _ in range(4):
        saver = subprocess.Popen([sys.executable, "-c", KILLED_SAVER, str(path)],
                                 stdout=subprocess.PIPE, text=True)
        assert saver.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.05, 1.5))
        saver.send_signal(signal.SIGKILL)
        done = [int(line) for line in saver.stdout.read().split()]
        saver.wait()
        last = done[-1] if done else _restored_value(path)
        assert _restored_value(path) in (last, last + 1)
    checkpoint.save(path, _tree(5), overwrite=True)
    assert _restored_value(path) == 5 and _leftovers(tmp_path) == []


def test_missing_or_damaged_checkpoints_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        checkpoint.restore(tmp_path / "none", _tree(0))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty holds no readable checkpoint"):
        checkpoint.restore(tmp_path / "empty", _tree(0))
    checkpoint.save(tmp_path / "ckpt", _tree(1))
    (tmp_path / "ckpt" / "_METADATA").write_bytes(b"{not json")  # the tree's metadata
    with pytest.raises(ValueError, match="ckpt holds no readable checkpoint"):
        checkpoint.restore(tmp_path / "ckpt", _tree(0))
