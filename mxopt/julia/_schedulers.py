"""MXNet.jl's ``OptimizationState`` and its learning-rate and momentum schedulers.

MXNet.jl's training loop mutates an ``OptimizationState``; here it is an
immutable NamedTuple that the loop advances purely
(:meth:`OptimizationState.next_epoch`, :meth:`OptimizationState.next_batch`).
Schedulers are arithmetic on its counters: with Python ints they return
Python floats (double precision, as MXNet.jl's ``Float64``); with JAX
integers, traced under ``jit`` included, they return float32 arrays.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax

from mxopt import validation

Scalar = float | jax.Array


class OptimizationState(NamedTuple):
    """Where training stands, as MXNet.jl counts it (MXNet.jl: ``OptimizationState``).

    ``OptimizationState(batch_size)`` starts every counter at 0, as MXNet.jl's
    one-argument constructor does.

    Attributes:
      batch_size: the mini-batch size; optimizers divide gradients by it
        (see :func:`mxopt.julia.normalized_gradient`).
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


def _states_of(num_update: jax.Array, steps_per_epoch: int) -> OptimizationState:
    """The ``OptimizationState`` of each update count: ``curr_iter = num_update``, in
    epoch ``1 + (num_update - 1) // steps_per_epoch``."""
    return OptimizationState(1, curr_epoch=1 + (num_update - 1) // steps_per_epoch,
                             curr_batch=1 + (num_update - 1) % steps_per_epoch,
                             curr_iter=num_update)


class AbstractLearningRateScheduler:
    """Base type of learning-rate schedulers (MXNet.jl: ``AbstractLearningRateScheduler``).

    A subclass implements ``get_learning_rate(self, state)``.
    """

    quantity = "learning rate"  # what mxopt.plot_schedule labels its values

    def get_learning_rate(self, state: OptimizationState) -> Scalar:
        raise NotImplementedError

    def values_at(self, num_update: jax.Array, steps_per_epoch: int) -> jax.Array:
        """The rate at each update count (:func:`mxopt.schedule_values` plots them)."""
        return self.get_learning_rate(_states_of(num_update, steps_per_epoch))


class AbstractMomentumScheduler:
    """Base type of momentum schedulers (MXNet.jl: ``AbstractMomentumScheduler``).

    A subclass implements ``get_momentum(self, state)``.
    """

    quantity = "momentum"

    def get_momentum(self, state: OptimizationState) -> Scalar | tuple[Scalar, Scalar]:
        raise NotImplementedError

    def values_at(self, num_update: jax.Array, steps_per_epoch: int) -> jax.Array:
        """The momentum at each update count: ``mu_t``, the first of Nadam's pair."""
        values = self.get_momentum(_states_of(num_update, steps_per_epoch))
        return values[0] if isinstance(values, tuple) else values


def _open_unit(name: str, value: object) -> float:
    if validation.decay_rate(name, value) == 0:  # in [0, 1), below 1 in float32 too
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return float(value)


def _unit(name: str, value: object) -> float:
    if not 0 <= validation.real(name, value) <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return float(value)


def _decay_time(state: OptimizationState, decay_on_iteration: bool) -> int | jax.Array:
    return state.curr_iter if decay_on_iteration else state.curr_epoch


class LearningRate:
    """MXNet.jl's ``LearningRate`` module: ``Fixed``, ``Exp`` and ``Inv``."""

    @dataclasses.dataclass(frozen=True)
    class Fixed(AbstractLearningRateScheduler):
        """Always ``eta`` (MXNet.jl: ``LearningRate.Fixed(learning_rate)``)."""

        eta: float

        def __post_init__(self):
            validation.non_negative("eta", self.eta)

        def get_learning_rate(self, state):
            del state
            return float(self.eta)

    @dataclasses.dataclass(frozen=True)
    class Exp(AbstractLearningRateScheduler):
        """``eta_t = eta0 * gamma^t`` (MXNet.jl: ``LearningRate.Exp(base_lr; gamma, ...)``).

        ``t`` is ``curr_epoch``, or ``curr_iter`` with ``decay_on_iteration``.
        ``gamma`` must be in (0, 1), as MXNet.jl asserts.
        """

        eta0: float
        gamma: float = 0.9
        decay_on_iteration: bool = False

        def __post_init__(self):
            validation.non_negative("eta0", self.eta0)
            _open_unit("gamma", self.gamma)

        def get_learning_rate(self, state):
            return self.eta0 * self.gamma ** _decay_time(state, self.decay_on_iteration)

    @dataclasses.dataclass(frozen=True)
    class Inv(AbstractLearningRateScheduler):
        """``eta_t = eta0 * (1 + gamma * t)^(-power)`` (MXNet.jl: ``LearningRate.Inv``).

        ``t`` as in :class:`Exp`. ``gamma`` must be in (0, 1) and ``power``
        >= 0, as MXNet.jl asserts.
        """

        eta0: float
        gamma: float = 0.9
        power: float = 0.5
        decay_on_iteration: bool = False

        def __post_init__(self):
            validation.non_negative("eta0", self.eta0)
            _open_unit("gamma", self.gamma)
            validation.non_negative("power", self.power)

        def get_learning_rate(self, state):
            t = _decay_time(state, self.decay_on_iteration)
            return self.eta0 * (1 + self.gamma * t) ** -self.power


class Momentum:
    """MXNet.jl's ``Momentum`` module: ``Null``, ``Fixed`` and ``NadamScheduler``."""

    @dataclasses.dataclass(frozen=True)
    class Null(AbstractMomentumScheduler):
        """Always 0 (MXNet.jl: ``Momentum.Null``).

        It also means *no momentum at all*: an optimizer given it keeps no
        momentum buffer (:class:`mxopt.julia.SGD`'s state is ``None``).
        """

        def get_momentum(self, state):
            del state
            return 0.0

    @dataclasses.dataclass(frozen=True)
    class Fixed(AbstractMomentumScheduler):
        """Always ``momentum`` (MXNet.jl: ``Momentum.Fixed``), in [0, 1)."""

        momentum: float

        def __post_init__(self):
            validation.decay_rate("momentum", self.momentum)

        def get_momentum(self, state):
            del state
            return float(self.momentum)

    @dataclasses.dataclass(frozen=True)
    class NadamScheduler(AbstractMomentumScheduler):
        """Nadam's warming momentum schedule (MXNet.jl: ``Momentum.NadamScheduler``).

        ``get_momentum`` returns the pair ``(mu_t, mu_{t+1})`` with::

            mu_t = mu0 * (1 - gamma * alpha^(t * delta))

        where ``t`` is ``curr_iter``. Defaults and ranges are MXNet.jl's:
        ``mu0`` (0.99), ``gamma`` (0.5) and ``alpha`` (0.96) in [0, 1],
        ``delta`` (0.004) >= 0.

        References:
          Dozat (2016), Incorporating Nesterov Momentum into Adam.
        """

        mu0: float = 0.99
        delta: float = 0.004
        gamma: float = 0.5
        alpha: float = 0.96

        def __post_init__(self):
            validation.non_negative("delta", self.delta)
            _unit("alpha", self.alpha)
            _unit("mu0", self.mu0)
            _unit("gamma", self.gamma)

        def _at(self, t):
            return self.mu0 * (1 - self.gamma * self.alpha ** (t * self.delta))

        def get_momentum(self, state):
            return self._at(state.curr_iter), self._at(state.curr_iter + 1)


def get_learning_rate(scheduler: AbstractLearningRateScheduler,
                      state: OptimizationState) -> Scalar:
    """The learning rate ``scheduler`` gives at ``state`` (MXNet.jl: ``get_learning_rate``)."""
    return scheduler.get_learning_rate(state)


def get_momentum(scheduler: AbstractMomentumScheduler,
                 state: OptimizationState) -> Scalar | tuple[Scalar, Scalar]:
    """The momentum ``scheduler`` gives at ``state`` (MXNet.jl: ``get_momentum``).

    A number, or for :class:`Momentum.NadamScheduler` the pair
    ``(mu_t, mu_{t+1})``.
    """
    return scheduler.get_momentum(state)


def get_lr_scheduler(scheduler: AbstractLearningRateScheduler | None,
                     lr: float) -> AbstractLearningRateScheduler:
    """``scheduler`` if given, else ``LearningRate.Fixed(lr)`` (MXNet.jl: ``get_lr_scheduler``).

    Raises:
      ValueError: ``scheduler`` is neither None nor a learning-rate scheduler
        (MXNet.jl silently ignores such a value; mxopt names it).
    """
    if scheduler is None:
        return LearningRate.Fixed(lr)
    if not isinstance(scheduler, AbstractLearningRateScheduler):
        raise ValueError("lr_scheduler must be an AbstractLearningRateScheduler or None, "
                         f"got {scheduler!r}")
    return scheduler


def get_momentum_scheduler(scheduler: AbstractMomentumScheduler | None,
                           default: float | AbstractMomentumScheduler
                           ) -> AbstractMomentumScheduler:
    """The momentum scheduler an optimizer uses (MXNet.jl: ``get_momentum_scheduler``).

    ``scheduler`` if given; else ``default`` if it is a scheduler; else
    ``Momentum.Null()`` for a momentum of 0 and ``Momentum.Fixed(default)``
    otherwise.

    Raises:
      ValueError: ``scheduler`` is neither None nor a momentum scheduler.
    """
    if scheduler is not None:
        if not isinstance(scheduler, AbstractMomentumScheduler):
            raise ValueError("momentum_scheduler must be an AbstractMomentumScheduler or None, "
                             f"got {scheduler!r}")
        return scheduler
    if isinstance(default, AbstractMomentumScheduler):
        return default
    if validation.real("momentum", default) == 0:
        return Momentum.Null()
    return Momentum.Fixed(default)


__all__ = ["AbstractLearningRateScheduler", "AbstractMomentumScheduler", "LearningRate",
           "Momentum", "OptimizationState", "get_learning_rate", "get_lr_scheduler",
           "get_momentum", "get_momentum_scheduler"]
