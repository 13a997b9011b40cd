"""GluonCV's learning-rate schedulers as pure functions of the update count.

GluonCV 0.10's ``gluoncv.utils.LRScheduler`` and ``LRSequential`` (the
schedules of its model-zoo recipes: a linear warmup, then cosine, step or
poly decay) are stateful MXNet schedulers; these compute the same value from
the count alone, so they run under ``jit`` and serve as any optimizer's
``lr_scheduler``. Per ``mode``, with ``N = niters - 1`` and
``T = min(max(num_update - offset, 0), N)``::

    constant  lr = base_lr
    step      lr = base_lr * step_factor ** (number of steps s <= T)
    linear    lr = target_lr + (base_lr - target_lr) * (1 - T / N)
    poly      lr = target_lr + (base_lr - target_lr) * (1 - T / N) ** power
    cosine    lr = target_lr + (base_lr - target_lr) * (1 + cos(pi * T / N)) / 2

``nepochs * iters_per_epoch``, when positive, replaces ``niters``, and
``step_epoch`` (in epochs) then replaces ``step_iter``. The rate holds its
last value past the end.

As MXNet applies an optimizer's ``learning_rate`` to any scheduler, it
replaces ``base_lr`` (:meth:`LRScheduler.overridden_by`): a constant
scheduler keeps the rate it was built with (GluonCV copies ``base_lr`` into
``target_lr`` at construction), and an :class:`LRSequential` none of its
members' (MXNet sets the sequence's own ``base_lr``, which it never reads).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from mxopt import validation
from mxopt.schedules import update_counts

MODES = ("constant", "step", "linear", "poly", "cosine")


@dataclasses.dataclass(frozen=True, repr=False)
class LRScheduler:
    """GluonCV's ``LRScheduler(mode, base_lr=0.1, target_lr=0, niters=0, nepochs=0,
    iters_per_epoch=0, offset=0, power=2, step_iter=None, step_epoch=None, step_factor=0.1)``
    (see the module docstring for its formula). ``iterations`` is the number
    of updates it spans: ``nepochs * iters_per_epoch`` if positive, else ``niters``.

    Raises:
      ValueError: an unknown ``mode``, a step schedule without steps, or a
        negative count or rate; when called, ``niters`` 1 for a mode that
        divides by ``niters - 1`` (GluonCV fails there at every call; such a
        scheduler may only begin an :class:`LRSequential`).
    """

    mode: str
    base_lr: float = 0.1
    target_lr: float = 0.0
    niters: int = 0
    nepochs: int = 0
    iters_per_epoch: int = 0
    offset: int = 0
    power: float = 2.0
    step_iter: Sequence[int] | None = None
    step_epoch: Sequence[int] | None = None
    step_factor: float = 0.1

    def __post_init__(self):
        for name in ("step_iter", "step_epoch"):  # tuples, so that jit can hash the scheduler
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(getattr(self, name)))
        validation.one_of("mode", self.mode, MODES)
        validation.non_negative("base_lr", self.base_lr)
        validation.non_negative("target_lr", self.target_lr)
        for name in ("niters", "nepochs", "iters_per_epoch", "offset"):
            validation.count(name, getattr(self, name))
        validation.real("power", self.power)
        validation.non_negative("step_factor", self.step_factor)
        if self.mode == "step" and self.step_iter is None and self.step_epoch is None:
            raise ValueError("a 'step' LRScheduler needs step_iter or step_epoch")
        niters, steps = self.niters, self.step_iter
        if self.nepochs * self.iters_per_epoch > 0:
            niters = self.nepochs * self.iters_per_epoch
            if self.step_epoch is not None:
                steps = [s * self.iters_per_epoch for s in self.step_epoch]
        object.__setattr__(self, "divides_by_zero",
                           niters == 1 and self.mode in ("linear", "poly", "cosine"))
        object.__setattr__(self, "iterations", niters)  # what LRSequential counts
        object.__setattr__(self, "_steps", tuple(validation.count("a step", s)
                                                 for s in steps or ()))
        # GluonCV's constant mode ends at the base_lr given here, whatever overrides it.
        object.__setattr__(self, "_target", self.base_lr if self.mode == "constant"
                           else self.target_lr)

    def __repr__(self) -> str:
        shown = [f"{self.mode!r}"] + [
            f"{field.name}={getattr(self, field.name)!r}" for field in dataclasses.fields(self)
            if field.name != "mode" and getattr(self, field.name) != field.default]
        return f"gluoncv.LRScheduler({', '.join(shown)})"

    def __call__(self, num_update: jax.Array | int) -> jax.Array:
        if self.divides_by_zero:
            raise ValueError(self.division_by_zero())
        return self.at(update_counts(num_update), self.offset)

    def division_by_zero(self) -> str:
        return (f"a {self.mode!r} LRScheduler over 1 iteration divides by niters - 1 = 0 "
                "(GluonCV raises ZeroDivisionError wherever it is called): give it niters (or "
                "nepochs * iters_per_epoch) of 0 or at least 2")

    def at(self, num_update: jax.Array, offset: int | jax.Array) -> jax.Array:
        """The rate at ``num_update`` (int32) for a schedule that starts at ``offset``; NaN
        where GluonCV divides by zero (:attr:`divides_by_zero`)."""
        if self.divides_by_zero:
            return jnp.full(jnp.shape(num_update), jnp.nan, jnp.float32)
        last = self.iterations - 1
        t = jnp.minimum(jnp.maximum(num_update - offset, 0), last)
        base, target = jnp.float32(self.base_lr), jnp.float32(self._target)
        if self.mode == "step":
            passed = sum((s <= t).astype(jnp.float32) for s in self._steps)
            return base * jnp.float32(self.step_factor) ** jnp.asarray(passed, jnp.float32)
        # 1 - T / N from the integers, and (1 + cos(pi * T / N)) / 2 as sin(pi / 2 * (1 - T / N))^2:
        # no float32 cancellation where the rate nears target_lr. XLA divides by multiplying
        # by 1 / N, which need not give 1 at T = 0: the start is given exactly.
        remaining = (jnp.where(t == 0, 1.0, (last - t).astype(jnp.float32) / last) if last
                     else jnp.float32(0.0))
        factor = {"constant": jnp.float32(0.0), "linear": remaining,
                  "poly": remaining ** jnp.float32(self.power),
                  "cosine": jnp.sin(jnp.float32(math.pi / 2) * remaining) ** 2}[self.mode]
        return target + (base - target) * factor

    def overridden_by(self, learning_rate: float) -> LRScheduler:
        """This scheduler after an optimizer's ``learning_rate`` replaced its ``base_lr``."""
        overridden = copy.copy(self)
        object.__setattr__(overridden, "base_lr", learning_rate)
        return overridden


@dataclasses.dataclass(frozen=True, repr=False)
class LRSequential:
    """GluonCV's ``LRSequential(schedulers)``: each scheduler in turn for its ``niters``.

    Scheduler ``i`` starts at the sum of the iterations before it (GluonCV
    sets each one's ``offset`` so), and each count is clipped to the last
    iteration of the sequence; the count goes to the first scheduler whose
    span it has not passed. ``base_lr`` is MXNet's default 0.01, which an
    optimizer's ``learning_rate`` replaces without changing any rate.

    A first member over one iteration (a warmup of one epoch of one batch)
    divides by zero in GluonCV at its one count, 0, where no update reads
    the rate; the rate there is NaN.

    Raises:
      TypeError: a member that is not a :class:`LRScheduler`.
      ValueError: no members, or a later member over one iteration whose mode
        divides by ``niters - 1 = 0`` (GluonCV raises when training reaches it).
    """

    schedulers: Sequence[LRScheduler]
    base_lr: float = 0.01

    def __post_init__(self):
        object.__setattr__(self, "schedulers", tuple(self.schedulers))
        if not self.schedulers:
            raise ValueError("LRSequential needs at least one scheduler")
        for scheduler in self.schedulers:
            if not isinstance(scheduler, LRScheduler):
                raise TypeError(f"LRSequential takes mxopt.gluoncv.LRScheduler members, got "
                                f"{scheduler!r}")
        for i, scheduler in enumerate(self.schedulers):
            if scheduler.divides_by_zero and (i > 0 or len(self.schedulers) == 1):
                raise ValueError(f"schedulers[{i}]: {scheduler.division_by_zero()}; in "
                                 "LRSequential only the first may, whose one count is 0, "
                                 "which no update uses")
        ends = [0]
        for scheduler in self.schedulers:
            ends.append(ends[-1] + scheduler.iterations)
        object.__setattr__(self, "_starts", tuple(ends[:-1]))
        object.__setattr__(self, "_ends", tuple(ends[1:]))

    def __repr__(self) -> str:
        return f"gluoncv.LRSequential({list(self.schedulers)!r})"

    def __call__(self, num_update: jax.Array | int) -> jax.Array:
        n = jnp.minimum(update_counts(num_update), self._ends[-1] - 1)
        rates = [s.at(n, start) for s, start in zip(self.schedulers, self._starts)]
        rate = rates[-1]  # the first member whose end is past n, else the last
        for end, earlier in zip(self._ends[-2::-1], rates[-2::-1]):
            rate = jnp.where(end > n, earlier, rate)
        return rate

    def overridden_by(self, learning_rate: float) -> LRSequential:
        """This sequence after an optimizer's ``learning_rate`` replaced its ``base_lr``."""
        return dataclasses.replace(self, base_lr=learning_rate)
