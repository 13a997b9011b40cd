"""Checks of hyperparameters, run when an optimizer or schedule is built and when
:func:`mxopt.set_hyperparams` changes a value.

Each check raises ``ValueError`` naming the argument at fault, so that a bad
value is reported where it was written, never as a NaN many steps later. A
value may be a Python number, a NumPy scalar or a concrete JAX scalar; a
traced value (inside ``jit``) has no value to check yet and passes through
unchanged.

Hyperparameters are held and computed with in float32, so a value is checked
as float32 will hold it: it must not overflow to infinity, a non-zero value
must not round to zero or to a subnormal number (which XLA flushes to zero),
and a decay rate must stay below 1 after rounding. Update counts are int32,
in ``[0, MAX_COUNT]``.
"""

from __future__ import annotations

import difflib
import math
import numbers
import sys
from collections.abc import Iterable

import jax
import numpy as np

MAX_COUNT = 2**31 - 1
"""The largest update count: counts are int32, and stay at this value once they reach it."""

_FLOAT32_MAX, _FLOAT32_TINY = float(np.finfo(np.float32).max), float(np.finfo(np.float32).tiny)


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
    """Returns ``value`` as a float; raises ValueError unless it is a finite real that float32
    holds: at most ``3.4e38`` in magnitude, and 0 or at least ``1.18e-38`` (a normal number)."""
    value = host_number(name, value)
    if is_traced(value):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    value = float(value)
    if abs(value) > _FLOAT32_MAX:
        raise ValueError(f"{name}={value!r} overflows float32, in which it is held and used "
                         f"(at most {_FLOAT32_MAX:.8g})")
    if value != 0 and abs(value) < _FLOAT32_TINY:
        raise ValueError(f"{name}={value!r} is below float32's smallest normal number "
                         f"{_FLOAT32_TINY:.8g}: held in float32 it would be flushed to 0; "
                         "give 0 or a larger value")
    return value


def flushed(value: object) -> object:
    """A computed (not given) value as float32 holds it: magnitudes below its smallest normal
    number are 0, as XLA flushes them; for checking a scheduled value, which may decay there."""
    if isinstance(value, numbers.Real) and abs(value) < _FLOAT32_TINY:
        return 0.0
    return value


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
    if not is_traced(value) and np.float32(value) == 1:
        raise ValueError(f"{name}={value!r} rounds to 1 in float32, in which it is held: it "
                         f"must be at most {float(np.nextafter(np.float32(1), np.float32(0)))!r}")
    return value


def count(name: str, value: object, *, minimum: int = 0) -> int:
    """An integer in ``[minimum, MAX_COUNT]`` (an update count or a number of steps)."""
    value = host_number(name, value)
    if is_traced(value):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    if value > MAX_COUNT:
        raise ValueError(f"{name}={value!r} is beyond the update count's range: counts are "
                         f"int32, at most 2**31 - 1 = {MAX_COUNT}")
    return int(value)


def one_of(name: str, value: object, choices: tuple[str, ...]) -> str:
    """One of a few strings."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def transformation(name: str, value: object) -> object:
    """An ``optax.GradientTransformation`` (what a wrapper such as ``apply_if_finite`` wraps)."""
    if not (isinstance(value, tuple) and hasattr(value, "init") and hasattr(value, "update")):
        raise TypeError(f"{name} must be an optax.GradientTransformation, such as "
                        f"mxopt.sgd(...) or mxopt.create('sgd', ...), got {value!r}")
    return value


def params_given(params: object, user: str) -> None:
    """Raises ValueError if ``params`` is None: ``user`` (a transform) reads the weights."""
    if params is None:
        raise ValueError(f"{user} needs params: call update(grads, state, params)")


def held_in_leaf_dtypes(params: object, user: str, *, decay_rates: dict[str, object],
                        positives: dict[str, object]) -> None:
    """Raises ValueError, naming the leaf, where a leaf's dtype (a float16 or bfloat16 leaf
    updated without a float32 master copy) rounds one of ``decay_rates`` to 1 or one of
    ``positives`` to 0: ``beta2=0.9999`` is 1 in float16 (the moment it decays would never
    change), ``epsilon=1e-8`` is 0 in float16 (a zero moment would be divided by 0).
    Traced values pass unchecked."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        dtype = np.dtype(getattr(leaf, "dtype", np.float32))
        if not jax.numpy.issubdtype(dtype, jax.numpy.floating) or dtype.itemsize > 2:
            continue
        bad = [f"{name}={value} is 1" for name, value in decay_rates.items()
               if not is_traced(value) and np.asarray(value, dtype) == 1]
        bad += [f"{name}={value} is 0" for name, value in positives.items()
                if not is_traced(value) and np.asarray(value, dtype) == 0]
        if bad:
            where = f"leaf {jax.tree_util.keystr(path)}" if path else "the weight"
            raise ValueError(f"{user}: {' and '.join(bad)} in {dtype.name}, the dtype of "
                             f"{where}; pass multi_precision=True to update it through a "
                             "float32 master copy")


# Other libraries' spellings of MXNet's argument names (optax, PyTorch, Keras, MXNet.jl).
SPELLINGS = {"lr": "learning_rate", "step_size": "learning_rate", "weight_decay": "wd",
             "beta_1": "beta1", "beta_2": "beta2", "b1": "beta1", "b2": "beta2",
             "eps": "epsilon", "epsilon": "eps", "max_grad_norm": "clip_gradient",
             "grad_clip": "clip_gradient", "clipvalue": "clip_gradient",
             "clip_value": "clip_gradient", "scheduler": "lr_scheduler",
             "schedule": "lr_scheduler", "alpha": "gamma1", "rho": "gamma1"}


def meant(name: str, names: Iterable[str]) -> str | None:
    """The name among ``names`` that a misspelled ``name`` most likely meant, if any: its
    MXNet spelling (:data:`SPELLINGS`: ``lr`` is ``learning_rate``) or the closest name."""
    names = list(names)
    if SPELLINGS.get(name) in names:
        return SPELLINGS[name]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_names(given: Iterable[str], names: Iterable[str], *, noun: str = "argument",
                  what: str = "it takes") -> str | None:
    """The error for the names in ``given`` that are not in ``names`` (None if all are):
    which ones, what each probably meant, and ``what`` the valid ones are."""
    names = list(names)
    unknown = [name for name in given if name not in names]
    if not unknown:
        return None
    shown = [f"{name!r}" + (f" (did you mean {guess!r}?)" if (guess := meant(name, names))
                            else "") for name in unknown]
    return f"no {noun} {', '.join(shown)}; {what} {sorted(names)}"


def outside_mxopt() -> int:
    """The ``stacklevel`` for ``warnings.warn`` that names the first caller outside mxopt."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] == "mxopt":
        frame, level = frame.f_back, level + 1
    return level
