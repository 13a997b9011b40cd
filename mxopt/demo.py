"""A short demonstration: MXNet recipes training a small classifier with mxopt.

A two-layer network learns a synthetic 10-class problem (drawn from a fixed
seed, so it needs no download) with three recipes written as MXNet users
write them: SGD with momentum and a FactorScheduler, NAG, and Adam. Each
training step is one jit-compiled function; the loss is printed as it falls.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import optax

import mxopt

RECIPES = {
    "sgd": dict(learning_rate=0.1, momentum=0.9, wd=1e-4, rescale_grad=1.0,
                lr_scheduler=mxopt.FactorScheduler(step=100, factor=0.5)),
    "nag": dict(learning_rate=0.05, momentum=0.9, wd=1e-4),
    "adam": dict(learning_rate=0.003, wd=1e-4, clip_gradient=5.0),
}


def make_data(key: jax.Array, n: int = 2048, features: int = 32, classes: int = 10):
    """Gaussian clusters: one centre per class, unit noise."""
    k1, k2, k3 = jax.random.split(key, 3)
    centres = 2.0 * jax.random.normal(k1, (classes, features))
    labels = jax.random.randint(k2, (n,), 0, classes)
    return centres[labels] + jax.random.normal(k3, (n, features)), labels


def init_params(key: jax.Array, features: int = 32, hidden: int = 64, classes: int = 10):
    k1, k2 = jax.random.split(key)
    return {
        "dense0": {"weight": jax.random.normal(k1, (features, hidden)) / jnp.sqrt(features),
                   "bias": jnp.zeros(hidden)},
        "dense1": {"weight": jax.random.normal(k2, (hidden, classes)) / jnp.sqrt(hidden),
                   "bias": jnp.zeros(classes)},
    }


def loss_fn(params, x, y):
    h = jax.nn.relu(x @ params["dense0"]["weight"] + params["dense0"]["bias"])
    logits = h @ params["dense1"]["weight"] + params["dense1"]["bias"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), logits


def train(name: str, steps: int, batch_size: int = 128, seed: int = 0, log_every: int = 50):
    """Trains with recipe ``name``; returns (losses, final accuracy, seconds per step)."""
    x, y = make_data(jax.random.PRNGKey(seed))
    params = init_params(jax.random.PRNGKey(seed + 1))
    # MXNet convention: no weight decay on biases.
    tx = mxopt.create(name, wd_mult=lambda leaf_name, _: 0.0 if leaf_name.endswith("bias") else 1.0,
                      **RECIPES[name])
    state = tx.init(params)

    @jax.jit
    def step(params, state, xb, yb):
        (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, xb, yb)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    losses, start = [], None
    for i in range(steps):
        lo = (i * batch_size) % (len(y) - batch_size)
        params, state, loss = step(params, state, x[lo:lo + batch_size], y[lo:lo + batch_size])
        if i == 0:
            loss.block_until_ready()
            start = time.perf_counter()
        losses.append(float(loss))
        if log_every and (i % log_every == 0 or i == steps - 1):
            print(f"  {name:5s} step {i:4d}  loss {losses[-1]:.4f}")
    per_step = (time.perf_counter() - start) / max(steps - 1, 1)
    _, logits = loss_fn(params, x, y)
    return losses, float((logits.argmax(-1) == y).mean()), per_step


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mxopt demo", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--optimizers", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    args = parser.parse_args(argv)
    print(f"mxopt {mxopt.__version__} on {jax.devices()[0].platform}")
    rows = []
    for name in args.optimizers:
        losses, accuracy, per_step = train(name, args.steps)
        rows.append((name, losses[0], losses[-1], accuracy, per_step))
    print(f"\n{'recipe':8s}{'first loss':>12s}{'final loss':>12s}{'accuracy':>10s}{'ms/step':>10s}")
    for name, first, last, accuracy, per_step in rows:
        print(f"{name:8s}{first:12.4f}{last:12.4f}{accuracy:10.3f}{1e3 * per_step:10.2f}")
