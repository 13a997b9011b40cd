"""Running an optimizer along a sequence of gradients, for tests that compare trajectories."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from mxnet_fixtures import with_scheduler
from steps import random_problem

import mxopt


def trajectory(tx: optax.GradientTransformation, params, grads_seq, rates=None, *,
               jit: bool = True) -> list:
    """The params after each step of ``tx`` along ``grads_seq``, jitted or (faster where each
    hypothesis example would compile anew) eager.

    Leaves may be NumPy arrays. With ``rates``, each step's ``learning_rate``
    is set first (with :func:`mxopt.set_hyperparams`).
    """
    step = (lambda p, s, g: tx.update(g, s, p))
    step = jax.jit(step) if jit else step
    p = jax.tree.map(jnp.asarray, params)
    state, out = tx.init(p), []
    for i, g in enumerate(grads_seq):
        if rates is not None:
            state = mxopt.set_hyperparams(state, learning_rate=rates[i])
        updates, state = step(p, state, jax.tree.map(jnp.asarray, g))
        p = optax.apply_updates(p, updates)
        out.append(p)
    return out


def assert_close_to(got: list, expected: list, *, rtol: float = 2e-5, atol: float = 2e-6):
    """Each step's params (``got``, as :func:`trajectory` gives them) against a reference's
    (``expected``, one ``{leaf name: array}`` a step), leaf by leaf."""
    assert len(got) == len(expected)
    for step, (params, want) in enumerate(zip(got, expected), 1):
        for name in want:
            np.testing.assert_allclose(np.asarray(params[name], np.float32),
                                       np.asarray(want[name], np.float32), rtol=rtol, atol=atol,
                                       err_msg=f"step {step}, leaf {name}")


def assert_matches_reference(name: str, reference, config: tuple, seed: int, shapes: dict, *,
                             steps: int = 6, jit: bool = True, **fixed):
    """Checks ``mxopt.create(name, ...)`` against a NumPy reference along a random problem.

    ``config`` is ``(kw, lr_mult, wd_mult)``, MXNet's keyword arguments (a scheduler as a spec)
    and the multipliers by leaf name, as :func:`strategies.base_arguments` draws them;
    ``reference(kw, params, grads, lr_mult, wd_mult)`` gives the params after each step of
    :func:`steps.random_problem`'s ``(params, grads)`` from ``seed``; ``fixed`` are more
    constructor arguments (SGLD's ``noise=False``).
    """
    kw, lr_mult, wd_mult = config
    params, grads = random_problem(shapes, seed, steps)
    expected = reference(kw, params, grads, lr_mult, wd_mult)
    tx = mxopt.create(name, lr_mult=lr_mult, wd_mult=wd_mult, **with_scheduler(kw), **fixed)
    assert_close_to(trajectory(tx, params, grads, jit=jit), expected)


def train_on_large_float16_gradients(tx: optax.GradientTransformation, params, steps: int = 30):
    """``params`` after ``steps`` jitted steps on float16 gradients of size up to 30."""
    state = tx.init(params)
    step = jax.jit(lambda p, s, g: tx.update(g, s, p))
    for i in range(steps):
        grads = jax.tree.map(lambda w, i=i: (30.0 * jnp.sin(w * 7 + i)).astype(jnp.float16),
                             params)
        updates, state = step(params, state, grads)
        params = optax.apply_updates(params, updates)
    return params


def bits(x) -> np.ndarray:
    """The raw bits of an array (a typed PRNG key's data), for bit-for-bit comparisons."""
    x = np.asarray(jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
    return x.view(f"u{x.dtype.itemsize}")


def same_bits(a, b) -> bool:
    """Whether two trees hold the same leaves, bit for bit."""
    return all(np.array_equal(bits(x), bits(y)) for x, y in
               zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def assert_master_follows_float32(make, w: jax.Array, steps: int = 5):
    """``make(multi_precision=True)`` over the low-precision leaf ``w``: at each step its
    master copy is exactly the float32 run of ``make()`` on the same grads, and the weights
    are that run rounded to ``w``'s dtype."""
    mp, fp32 = make(multi_precision=True), make()
    p_low, p32 = {"w": w}, {"w": w.astype(jnp.float32)}
    s_low, s32 = mp.init(p_low), fp32.init(p32)
    for i in range(steps):
        g = {"w": jnp.cos(jnp.arange(w.size, dtype=jnp.float32).reshape(w.shape) + i)
             .astype(w.dtype)}
        u_low, s_low = mp.update(g, s_low, p_low)
        p_low = optax.apply_updates(p_low, u_low)
        u32, s32 = fp32.update(jax.tree.map(lambda x: x.astype(jnp.float32), g), s32, p32)
        p32 = optax.apply_updates(p32, u32)
        np.testing.assert_array_equal(s_low.master["w"], p32["w"])
        np.testing.assert_array_equal(p_low["w"], p32["w"].astype(w.dtype))
