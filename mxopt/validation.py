"""Checks of hyperparameters, run when an optimizer or schedule is built.

Each check raises ``ValueError`` naming the argument at fault, so that a bad
value is reported where it was written, never as a NaN many steps later.
"""

from __future__ import annotations

import math
import numbers


def real(name: str, value: object) -> float:
    """Returns ``value`` as a float; raises ValueError unless it is a finite real."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def non_negative(name: str, value: object) -> float:
    """A finite real ``>= 0``."""
    if real(name, value) < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return float(value)


def positive(name: str, value: object) -> float:
    """A finite real ``> 0``."""
    if real(name, value) <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return float(value)


def decay_rate(name: str, value: object) -> float:
    """A momentum or beta: a real in ``[0, 1)``."""
    if not 0 <= real(name, value) < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)


def count(name: str, value: object, *, minimum: int = 0) -> int:
    """An integer ``>= minimum`` (an update count or a number of steps)."""
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
