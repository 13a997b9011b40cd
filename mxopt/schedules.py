"""MXNet's learning-rate schedulers as pure functions of the update count.

MXNet's ``mx.lr_scheduler`` objects mutate themselves as they are called; these
compute the same value from the count alone, in closed form, so they run
under ``jit``, ``scan`` and ``vmap`` and give MXNet's value for any count,
including a late start (``begin_num_update``) or a jump.

Every scheduler takes MXNet's arguments, checks them when built (ValueError
naming the argument), and is called as ``scheduler(num_update)``, returning a
float32 scalar. ``num_update`` is MXNet's: the first update of a run from
scratch sees 1.

Warmup, shared by all: for ``num_update < warmup_steps`` the rate is
``warmup_begin_lr`` (``warmup_mode='constant'``) or
``warmup_begin_lr + (warmup_final_lr - warmup_begin_lr) * num_update / warmup_steps``
(``'linear'``), where ``warmup_final_lr`` is the ``base_lr`` given at construction.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from mxopt import validation

Schedule = Callable[[jax.Array | int], jax.Array]


def _decay(base_lr: float, factor: float, k: jax.Array) -> jax.Array:
    """``base_lr * factor**k``, from the double-precision ``log(factor)``.

    Raising the float32 rounding of ``factor`` to a large ``k`` would multiply
    its rounding error by ``k``.
    """
    log_factor = math.log(factor) if factor > 0 else -math.inf
    decayed = base_lr * jnp.exp(k.astype(jnp.float32) * jnp.float32(log_factor))
    return jnp.where(k == 0, jnp.float32(base_lr), decayed)  # factor**0 is 1, factor 0 too


def update_counts(num_update: jax.Array | int) -> jax.Array:
    """``num_update`` (a count or an array of counts) as int32, refusing known counts outside
    ``[0, validation.MAX_COUNT]``; traced ones are the counter's, always within."""
    if not validation.is_traced(num_update):
        counts = np.asarray(num_update)
        if counts.dtype.kind not in "iu" or (counts.size and not (
                0 <= counts.min() and counts.max() <= validation.MAX_COUNT)):
            raise ValueError(f"num_update must be an update count in [0, 2**31 - 1], got "
                             f"{num_update!r}")
    return jnp.asarray(num_update, jnp.int32)


@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class LRScheduler:
    """Base of MXNet's schedulers: ``base_lr`` and the warmup (see module docstring)."""

    base_lr: float = 0.01
    warmup_steps: int = 0
    warmup_begin_lr: float = 0.0
    warmup_mode: str = "linear"
    warmup_final_lr: float | None = None

    def __post_init__(self):
        validation.non_negative("base_lr", self.base_lr)
        validation.count("warmup_steps", self.warmup_steps)
        validation.non_negative("warmup_begin_lr", self.warmup_begin_lr)
        validation.one_of("warmup_mode", self.warmup_mode, ("linear", "constant"))
        if self.warmup_final_lr is None:
            object.__setattr__(self, "warmup_final_lr", self.base_lr)
        if self.warmup_begin_lr > self.warmup_final_lr:
            raise ValueError(f"warmup_begin_lr ({self.warmup_begin_lr}) must not exceed base_lr "
                             f"({self.warmup_final_lr})")

    def __repr__(self) -> str:
        """The constructor call, with ``base_lr`` and the arguments that differ from defaults
        (``warmup_final_lr`` only where a warmup rises to it)."""
        shown = [field.name for field in dataclasses.fields(self)
                 if field.name == "base_lr" or field.default is dataclasses.MISSING
                 or getattr(self, field.name) != field.default]
        if self.warmup_final_lr == self.base_lr or not self.warmup_steps:  # unused
            shown.remove("warmup_final_lr")
        args = ", ".join(f"{name}={getattr(self, name)!r}" for name in shown)
        return f"{type(self).__name__}({args})"

    def __call__(self, num_update: jax.Array | int) -> jax.Array:
        n = update_counts(num_update)
        return jnp.where(n < self.warmup_steps, self._warmup(n), self._decayed(n))

    def _warmup(self, n: jax.Array) -> jax.Array:
        if self.warmup_mode == "constant" or self.warmup_steps == 0:
            return jnp.float32(self.warmup_begin_lr)
        rise = self.warmup_final_lr - self.warmup_begin_lr
        return self.warmup_begin_lr + rise * n.astype(jnp.float32) / self.warmup_steps

    def _decayed(self, n: jax.Array) -> jax.Array:
        raise NotImplementedError

    def overridden_by(self, learning_rate: float) -> LRScheduler:
        """This scheduler after an optimizer's ``learning_rate`` overrides ``base_lr``.

        As in MXNet, the new ``base_lr`` drives the decay, while warmup still
        rises to the ``base_lr`` given at construction.
        """
        return dataclasses.replace(self, base_lr=learning_rate,
                                   warmup_final_lr=self.warmup_final_lr)

    def as_mxnet_runs_it(self, begin_num_update: int, held_rate: float) -> LRScheduler:
        """This scheduler as MXNet 1.9.1's stateful one runs in an optimizer whose first
        update is ``begin_num_update + 1`` (``mxnet_quirks``), ``held_rate`` being the
        ``base_lr`` MXNet's object holds (an optimizer's ``learning_rate`` overwrites it).
        The same scheduler unless its values depend on its call history."""
        del begin_num_update, held_rate
        return self


@dataclasses.dataclass(frozen=True, repr=False)
class FactorScheduler(LRScheduler):
    """Multiplies the rate by ``factor`` every ``step`` updates.

    ``lr = max(base_lr * factor**k, stop_factor_lr)`` with
    ``k = max(0, ceil(num_update / step) - 1)`` decays so far (MXNet decays
    once ``num_update`` exceeds a multiple of ``step``; its docstring's
    ``floor(num_update / step)`` is one update early at the multiples). When
    ``k == 0`` the rate is ``base_lr`` even below ``stop_factor_lr``, as in MXNet.
    """

    step: int
    factor: float = 1.0
    stop_factor_lr: float = 1e-8

    def __post_init__(self):
        super().__post_init__()
        validation.count("step", self.step, minimum=1)
        if not 0 <= validation.real("factor", self.factor) <= 1:
            raise ValueError(f"factor must be in [0, 1], got {self.factor!r}")
        validation.non_negative("stop_factor_lr", self.stop_factor_lr)

    def _decayed(self, n):
        k = jnp.maximum(n - 1, 0) // self.step
        lr = _decay(self.base_lr, self.factor, k)
        return jnp.where(k == 0, jnp.float32(self.base_lr), jnp.maximum(lr, self.stop_factor_lr))


@dataclasses.dataclass(frozen=True, repr=False)
class MultiFactorScheduler(LRScheduler):
    """Multiplies the rate by ``factor`` at each update count in ``step``.

    ``lr = base_lr * factor**k`` with ``k`` the number of entries of ``step``
    that ``num_update`` exceeds.
    """

    step: tuple[int, ...]
    factor: float = 1.0

    def __post_init__(self):
        if isinstance(self.step, str) or not hasattr(self.step, "__iter__"):
            raise ValueError(f"step must list the update counts at which to decay (as in "
                             f"MXNet, e.g. step=[100, 200]), got {self.step!r}")
        object.__setattr__(self, "step", tuple(self.step))
        super().__post_init__()
        if not self.step:
            raise ValueError("step must list at least one update count")
        for i, s in enumerate(self.step):
            validation.count(f"step[{i}]", s, minimum=1)
            if i and s <= self.step[i - 1]:
                raise ValueError(f"step must be increasing, got {list(self.step)}")
        if not 0 <= validation.real("factor", self.factor) <= 1:
            raise ValueError(f"factor must be in [0, 1], got {self.factor!r}")

    def _decayed(self, n):
        k = jnp.sum(n > jnp.asarray(self.step, jnp.int32))
        return _decay(self.base_lr, self.factor, k)


@dataclasses.dataclass(frozen=True, repr=False)
class _DecayToFinal(LRScheduler):
    """A decay from ``base_lr`` to ``final_lr`` over the updates after warmup.

    ``lr = final_lr + (base_lr - final_lr) * shape(remaining)`` for
    ``n <= max_update`` and ``final_lr`` after, where
    ``remaining = 1 - (n - warmup_steps) / (max_update - warmup_steps)`` is
    computed from the integer ``max_update - n`` to keep full precision near
    the end. As in MXNet, the decay starts from the ``base_lr`` given at
    construction: an optimizer's ``learning_rate`` does not change it.

    MXNet's object sets its rate only on calls with ``n <= max_update``, so
    when its first call comes after ``max_update`` it returns the ``base_lr``
    it holds for good. This returns ``final_lr`` there, unless
    ``stale_rate`` is given (:meth:`as_mxnet_runs_it`, for
    ``mxnet_quirks``): then every ``n > max_update`` gives ``stale_rate``.
    """

    max_update: int
    _: dataclasses.KW_ONLY
    final_lr: float = 0.0
    stale_rate: float | None = None

    def __post_init__(self):
        super().__post_init__()
        validation.count("max_update", self.max_update, minimum=1)
        validation.non_negative("final_lr", self.final_lr)
        if self.max_update <= self.warmup_steps:
            raise ValueError(f"max_update ({self.max_update}) must exceed warmup_steps "
                             f"({self.warmup_steps})")
        if self.stale_rate is not None:
            validation.non_negative("stale_rate", self.stale_rate)

    def _decayed(self, n):
        span = self.max_update - self.warmup_steps
        remaining = jnp.clip(self.max_update - n, 0, span).astype(jnp.float32) / span
        rate = self.final_lr + (self.base_lr - self.final_lr) * self._shape(remaining)
        if self.stale_rate is None:
            return rate
        return jnp.where(n > self.max_update, jnp.float32(self.stale_rate), rate)

    def _shape(self, remaining: jax.Array) -> jax.Array:
        raise NotImplementedError

    def overridden_by(self, learning_rate: float) -> LRScheduler:
        return self

    def as_mxnet_runs_it(self, begin_num_update: int, held_rate: float) -> LRScheduler:
        """With the first update past ``max_update``, the ``held_rate`` for good."""
        if self.stale_rate is not None or begin_num_update < self.max_update:
            return self
        return dataclasses.replace(self, stale_rate=held_rate)


@dataclasses.dataclass(frozen=True, repr=False)
class PolyScheduler(_DecayToFinal):
    """Polynomial decay: ``shape(remaining) = remaining**pwr`` (see ``_DecayToFinal``).

    ``lr = final_lr + (base_lr - final_lr) * (1 - p)**pwr`` with
    ``p = (n - warmup_steps) / (max_update - warmup_steps)``.
    """

    _: dataclasses.KW_ONLY
    pwr: float = 2

    def __post_init__(self):
        super().__post_init__()
        validation.non_negative("pwr", self.pwr)

    def _shape(self, remaining):
        return remaining ** self.pwr


@dataclasses.dataclass(frozen=True, repr=False)
class CosineScheduler(_DecayToFinal):
    """Cosine decay (see ``_DecayToFinal``).

    ``lr = final_lr + (base_lr - final_lr) * (1 + cos(pi * p)) / 2`` with
    ``p = (n - warmup_steps) / (max_update - warmup_steps)``, evaluated as
    ``sin(pi/2 * remaining)**2``, which keeps float32 precision where the
    cosine form cancels.
    """

    def _shape(self, remaining):
        return jnp.sin(jnp.float32(math.pi / 2) * remaining) ** 2


BY_NAME: dict[str, type[LRScheduler]] = {
    cls.__name__: cls
    for cls in (FactorScheduler, MultiFactorScheduler, PolyScheduler, CosineScheduler)}
"""MXNet's scheduler classes by name: the only ones a saved file may name."""
