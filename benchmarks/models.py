"""The Flax NNX model whose whole training step the benchmarks time, and that step."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from benchmarks import suite

WIDTH, INPUTS, CLASSES, BATCH = 2048, 784, 10, 64


class MLP(nnx.Module):
    """A 784-2048-2048-10 perceptron: 5.8M parameters in 6 leaves."""

    def __init__(self, rngs: nnx.Rngs):
        self.hidden0 = nnx.Linear(INPUTS, WIDTH, rngs=rngs)
        self.hidden1 = nnx.Linear(WIDTH, WIDTH, rngs=rngs)
        self.output = nnx.Linear(WIDTH, CLASSES, rngs=rngs)

    def __call__(self, x):
        return self.output(nnx.relu(self.hidden1(nnx.relu(self.hidden0(x)))))


def batch(seed: int = 0) -> tuple[jax.Array, jax.Array]:
    """Random inputs and labels for one step."""
    x = jax.random.normal(jax.random.key(seed), (BATCH, INPUTS))
    return x, jnp.arange(BATCH) % CLASSES


def training_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation, params: nnx.State,
                  x: jax.Array, y: jax.Array) -> suite.Step:
    """The compiled step ``(params, state, batch) -> (params, state)``, loss and update
    together, params and state donated: the recipe of docs/performance.md."""
    params = jax.tree.map(jnp.copy, params)
    state = tx.init(params)

    def step(params, state, batch):
        def loss(params):
            logits = nnx.merge(graphdef, params)(batch[0])
            return optax.softmax_cross_entropy_with_integer_labels(logits, batch[1]).mean()

        grads = jax.grad(loss)(params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return suite.compiled(step, params, state, (x, y))
