"""Stochastic gradient Langevin dynamics: half a gradient step plus Gaussian noise."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mxopt import validation
from mxopt.base import Base, optimizer
from mxopt.numerics import cast
from mxopt.registry import MXNet, register
from mxopt.structure import brief_repr
from mxopt.transforms import LeafRates, LearningRateState


@brief_repr
class ScaleByLangevinState(NamedTuple):
    rate: LearningRateState  # learning rate, lr_mult
    key: jax.Array | None  # u32[2] PRNG key of the next update's noise; None without noise


def scale_by_langevin(rate: LeafRates, *, seed: int = 0,
                      noise: bool = True) -> optax.GradientTransformation:
    """One step of Langevin dynamics: ``g <- -lr/2 * g + sqrt(lr) * n``, ``n ~ N(0, 1)``.

    ``lr`` is each leaf's rate from ``rate``; the noise has variance ``lr``
    per element. It comes from a PRNG key held in the state, split at every
    update (one subkey per leaf, in the params' flattening order), so a run
    is reproducible from ``seed`` and a jitted step gives the same numbers
    as an eager one.

    Args:
      rate: the learning rate (schedule, ``lr_mult``, ``begin_num_update``).
      seed: the seed of the first key, an integer >= 0.
      noise: False leaves the noise out, and the state holds no key:
        gradient descent at half the rate (MXNet's update without its
        random draw, for tests and debugging).
    """
    seed = validation.count("seed", seed)
    if not isinstance(noise, bool):
        raise ValueError(f"noise must be a bool, got {noise!r}")

    def init_fn(params):
        return ScaleByLangevinState(rate.init(params), jax.random.PRNGKey(seed) if noise else None)

    def update_fn(updates, state, params=None, *, count, **extra_args):
        del params, extra_args
        lrs = rate.at(state.rate, count, updates)
        rate_state = rate.given.injected(state.rate)
        steps = jax.tree.map(lambda g, lr: -cast(lr / 2, g) * g, updates, lrs)
        if not noise:
            return steps, ScaleByLangevinState(rate_state, None)
        key, draw = jax.random.split(state.key)
        leaves, treedef = jax.tree.flatten(steps)
        keys = jax.random.split(draw, len(leaves))
        noisy = [s + cast(jnp.sqrt(lr), s) * jax.random.normal(k, s.shape, s.dtype)
                 for s, lr, k in zip(leaves, jax.tree.leaves(lrs), keys)]
        return jax.tree.unflatten(treedef, noisy), ScaleByLangevinState(rate_state, key)

    return rate.with_counter(optax.GradientTransformationExtraArgs(init_fn, update_fn))


@register(mxnet=MXNet("SGLD", state=None))
@optimizer
def sgld(*, seed: int = 0, noise: bool = True, base: Base) -> optax.GradientTransformation:
    """MXNet's ``sgld``: stochastic gradient Langevin dynamics.

    Per leaf, with ``lr`` the (scheduled) learning rate times ``lr_mult``::

        g = clip(rescale_grad * grad, clip_gradient) + wd * wd_mult * w
        w = w - lr/2 * g + n,    n ~ N(0, lr) elementwise

    MXNet draws ``n`` from its global random state; mxopt draws it from a
    PRNG key held in the optimizer state, seeded by ``seed`` and split at
    every update, so the same seed gives the same trajectory (the numbers
    are JAX's, not MXNet's).

    Args:
      seed: the seed of the noise, an integer >= 0 (not an MXNet argument).
      noise: False drops the noise, leaving MXNet's deterministic part of
        the update (not an MXNet argument; for tests and debugging).

    References:
      Welling & Teh, "Bayesian Learning via Stochastic Gradient Langevin
      Dynamics", ICML 2011. Patterson & Teh, "Stochastic Gradient
      Riemannian Langevin Dynamics on the Probability Simplex", NIPS 2013
      (the paper MXNet cites).
    """
    return base.build(base.rescale(), base.clip(), base.weight_decay(),
                      scale_by_langevin(base.rate(), seed=seed, noise=noise))
