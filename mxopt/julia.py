"""MXNet.jl's optimizer module: OptimizationState and its schedulers.

MXNet.jl drives its schedulers from an ``OptimizationState`` that the
training loop mutates. Here the state is an immutable NamedTuple that the
loop advances purely (:meth:`OptimizationState.next_epoch`,
:meth:`OptimizationState.next_batch`); its counters may be Python ints or
JAX integers, so the schedulers also run under ``jit``.

Schedulers mirror MXNet.jl's ``LearningRate`` and ``Momentum`` modules::

    LearningRate.Fixed(eta)                      eta
    LearningRate.Exp(eta0, gamma=0.9)            eta0 * gamma^t
    LearningRate.Inv(eta0, gamma=0.9, power=0.5) eta0 * (1 + gamma*t)^(-power)
    Momentum.Null()                              0
    Momentum.Fixed(mu)                           mu

where ``t`` is ``curr_epoch``, or ``curr_iter`` with ``decay_on_iteration=True``.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from mxopt import validation


class OptimizationState(NamedTuple):
    """Where training stands, as MXNet.jl counts it.

    Attributes:
      batch_size: the mini-batch size.
      curr_epoch: 0 before training; 1 during the first pass over the data.
      curr_batch: mini-batches seen in this epoch; 0 at the start of each.
      curr_iter: mini-batches seen in all, never reset.
    """

    batch_size: int
    curr_epoch: int | jax.Array = 0
    curr_batch: int | jax.Array = 0
    curr_iter: int | jax.Array = 0

    def next_epoch(self) -> OptimizationState:
        """The state at the start of the next epoch: epoch + 1, batch 0."""
        return self._replace(curr_epoch=self.curr_epoch + 1, curr_batch=0)

    def next_batch(self) -> OptimizationState:
        """The state while processing the next mini-batch: batch + 1, iter + 1."""
        return self._replace(curr_batch=self.curr_batch + 1, curr_iter=self.curr_iter + 1)


class AbstractOptimizer:
    """Base type of MXNet.jl-style optimizers."""


class AbstractLearningRateScheduler:
    """Base type of learning-rate schedulers: ``get_learning_rate(self, state)``."""

    def get_learning_rate(self, state: OptimizationState) -> jax.Array | float:
        raise NotImplementedError


class AbstractMomentumScheduler:
    """Base type of momentum schedulers: ``get_momentum(self, state)``."""

    def get_momentum(self, state: OptimizationState) -> jax.Array | float:
        raise NotImplementedError


class AbstractOptimizerOptions:
    """Base type of optimizer options (grad_scale, grad_clip, weight_decay, ...)."""


def _decay_time(state: OptimizationState, decay_on_iteration: bool) -> jax.Array:
    return jnp.asarray(state.curr_iter if decay_on_iteration else state.curr_epoch, jnp.float32)


class LearningRate:
    """MXNet.jl's ``LearningRate`` module: ``Fixed``, ``Exp`` and ``Inv``."""

    @dataclasses.dataclass(frozen=True)
    class Fixed(AbstractLearningRateScheduler):
        """Always ``eta``."""

        eta: float

        def __post_init__(self):
            validation.non_negative("eta", self.eta)

        def get_learning_rate(self, state):
            del state
            return jnp.float32(self.eta)

    @dataclasses.dataclass(frozen=True)
    class Exp(AbstractLearningRateScheduler):
        """``eta0 * gamma^t``; ``t`` is the epoch, or the iteration with ``decay_on_iteration``."""

        eta0: float
        gamma: float = 0.9
        decay_on_iteration: bool = False

        def __post_init__(self):
            validation.non_negative("eta0", self.eta0)
            validation.positive("gamma", self.gamma)

        def get_learning_rate(self, state):
            t = _decay_time(state, self.decay_on_iteration)
            return self.eta0 * jnp.float32(self.gamma) ** t

    @dataclasses.dataclass(frozen=True)
    class Inv(AbstractLearningRateScheduler):
        """``eta0 * (1 + gamma * t)^(-power)``; ``t`` as in ``Exp``."""

        eta0: float
        gamma: float = 0.9
        power: float = 0.5
        decay_on_iteration: bool = False

        def __post_init__(self):
            validation.non_negative("eta0", self.eta0)
            validation.non_negative("gamma", self.gamma)
            validation.real("power", self.power)

        def get_learning_rate(self, state):
            t = _decay_time(state, self.decay_on_iteration)
            return self.eta0 * (1 + self.gamma * t) ** jnp.float32(-self.power)


class Momentum:
    """MXNet.jl's ``Momentum`` module: ``Null`` and ``Fixed``."""

    @dataclasses.dataclass(frozen=True)
    class Null(AbstractMomentumScheduler):
        """Always 0: no momentum, and no momentum buffer in the optimizer."""

        def get_momentum(self, state):
            del state
            return jnp.float32(0)

    @dataclasses.dataclass(frozen=True)
    class Fixed(AbstractMomentumScheduler):
        """Always ``momentum``."""

        momentum: float

        def __post_init__(self):
            validation.decay_rate("momentum", self.momentum)

        def get_momentum(self, state):
            del state
            return jnp.float32(self.momentum)


def get_learning_rate(scheduler: AbstractLearningRateScheduler,
                      state: OptimizationState) -> jax.Array:
    """The learning rate ``scheduler`` gives at ``state``."""
    return scheduler.get_learning_rate(state)


def get_momentum(scheduler: AbstractMomentumScheduler, state: OptimizationState) -> jax.Array:
    """The momentum ``scheduler`` gives at ``state``."""
    return scheduler.get_momentum(state)
