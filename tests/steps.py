"""Steps the per-optimizer tests share: a jitted step that counts how often JAX traces it (a
second trace is a recompile), and float16 steps on float32 master weights."""

import jax
import jax.numpy as jnp
import numpy as np
import optax


def counting_step(tx: optax.GradientTransformation, *, apply_updates: bool = True):
    """``(step, traces)``: ``step(params, state, grads)`` jitted, and the list it adds to at
    each trace. The step returns ``(new params, new state)``, or ``(updates, new state)``
    where ``apply_updates=False``."""
    traces = []

    @jax.jit
    def step(params, state, grads):
        traces.append(None)
        updates, state = tx.update(grads, state, params)
        return (optax.apply_updates(params, updates) if apply_updates else updates), state

    return step, traces


def assert_float32_master(tx: optax.GradientTransformation, update, fields, *, steps: int = 3):
    """Steps float16 params ``steps`` times with ``tx`` (built with ``multi_precision=True``)
    through ``update`` (its ``update``, jitted or not), and checks the master weights:
    float32, the float16 params their rounding, and the state's ``fields`` float32 too."""
    params = {"w": jnp.linspace(-1, 1, 6).astype(jnp.float16)}
    state = tx.init(params)
    for i in range(steps):
        grads = {"w": jnp.cos(jnp.arange(6.0) + i).astype(jnp.float16)}
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
    master = state.master["w"]
    assert master.dtype == jnp.float32 and params["w"].dtype == jnp.float16
    for name in fields:
        assert optax.tree.get(state, name)["w"].dtype == jnp.float32, name
    np.testing.assert_array_equal(params["w"], master.astype(jnp.float16))


def random_problem(shapes: dict, seed: int, steps: int = 6) -> tuple:
    """``(params, grads)``: float32 params uniform in [-1, 1] of ``shapes``, and ``steps``
    trees of standard normal gradients, drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    params = {n: rng.uniform(-1, 1, s).astype(np.float32) for n, s in shapes.items()}
    grads = [{n: rng.normal(0, 1, s).astype(np.float32) for n, s in shapes.items()}
             for _ in range(steps)]
    return params, grads
