"""Checks of hyperparameters, run when an optimizer or schedule is built and when
:func:`mxopt.set_hyperparams` changes a value.

Each check raises ``ValueError`` naming the argument at fault, so that a bad
value is reported where it was written, never as a NaN many steps later. A
value may be a Python number, a NumPy scalar or a concrete JAX scalar; a
traced value (inside ``jit``) has no value to check yet and passes through
unchanged.
"""

from __future__ import annotations

import math
import numbers

import jax
import numpy as np


def is_traced(value: object) -> bool:
    """Whether ``value`` is a JAX tracer: a value known only when the traced function runs."""
    return isinstance(value, jax.core.Tracer)


def host_number(name: str, value: object) -> object:
    """``value`` as a Python number if it is a NumPy or concrete JAX scalar, else unchanged.

    Raises:
      ValueError: an array with more than one element.
    """
    if is_traced(value) or not isinstance(value, jax.Array | np.ndarray | np.generic):
        return value
    if np.ndim(value) != 0:
        raise ValueError(f"{name} must be a scalar, got an array of shape {np.shape(value)}")
    return np.asarray(value).item()


def real(name: str, value: object) -> float:
    """Returns ``value`` as a float; raises ValueError unless it is a finite real."""
    value = host_number(name, value)
    if is_traced(value):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def non_negative(name: str, value: object) -> float:
    """A finite real ``>= 0``."""
    value = real(name, value)
    if not is_traced(value) and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value


def positive(name: str, value: object) -> float:
    """A finite real ``> 0``."""
    value = real(name, value)
    if not is_traced(value) and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def decay_rate(name: str, value: object) -> float:
    """A momentum or beta: a real in ``[0, 1)``."""
    value = real(name, value)
    if not is_traced(value) and not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return value


def count(name: str, value: object, *, minimum: int = 0) -> int:
    """An integer ``>= minimum`` (an update count or a number of steps)."""
    value = host_number(name, value)
    if is_traced(value):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def one_of(name: str, value: object, choices: tuple[str, ...]) -> str:
    """One of a few strings."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value
