"""Running an optimizer along a sequence of gradients, for tests that compare trajectories."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

import mxopt


def trajectory(tx: optax.GradientTransformation, params, grads_seq, rates=None) -> list:
    """The params after each jitted step of ``tx`` along ``grads_seq``.

    Leaves may be NumPy arrays. With ``rates``, each step's ``learning_rate``
    is set first (with :func:`mxopt.set_hyperparams`).
    """
    step = jax.jit(lambda p, s, g: tx.update(g, s, p))
    p = jax.tree.map(jnp.asarray, params)
    state, out = tx.init(p), []
    for i, g in enumerate(grads_seq):
        if rates is not None:
            state = mxopt.set_hyperparams(state, learning_rate=rates[i])
        updates, state = step(p, state, jax.tree.map(jnp.asarray, g))
        p = optax.apply_updates(p, updates)
        out.append(p)
    return out


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
