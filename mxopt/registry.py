"""Optimizers by name, as ``mx.optimizer.create`` finds them.

Names are case-insensitive. ``register`` adds a constructor (a function that
takes keyword arguments and returns an ``optax.GradientTransformation``)
under its ``__name__`` or a given name.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import optax

from mxopt.optimizers._base import described

Constructor = Callable[..., optax.GradientTransformation]
_REGISTRY: dict[str, Constructor] = {}


def register(constructor: Constructor | None = None, *, name: str | None = None):
    """Registers ``constructor`` under ``name`` (default: its ``__name__``).

    Usable as ``@register``, ``@register(name="sgd")`` or ``register(fn)``.
    It returns ``fn`` wrapped by :func:`~mxopt.optimizers._base.described`, so
    an optimizer it builds reprs as the call that built it.
    Registering a taken name replaces it, with a warning, as in MXNet.
    """
    def add(fn: Constructor) -> Constructor:
        fn = described(fn)
        key = (name or fn.__name__).lower()
        if key in _REGISTRY and _REGISTRY[key] is not fn:
            warnings.warn(f"optimizer {key!r} is overridden by {fn.__module__}.{fn.__qualname__}",
                          stacklevel=3)
        _REGISTRY[key] = fn
        return fn

    return add if constructor is None else add(constructor)


def registered_names() -> list[str]:
    """The names :func:`create` accepts, sorted."""
    return sorted(_REGISTRY)


def lookup(name: str) -> Constructor:
    """The constructor registered as ``name`` (case-insensitive).

    Raises:
      ValueError: no optimizer has that name (the message lists them).
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in _REGISTRY:
        raise ValueError(f"unknown optimizer {name!r}; registered: {', '.join(registered_names())}")
    return _REGISTRY[key]


def create(name: str, **kwargs) -> optax.GradientTransformation:
    """Builds the optimizer registered as ``name`` with MXNet's keyword arguments.

    Raises:
      ValueError: no optimizer has that name (the message lists them).
    """
    return lookup(name)(**kwargs)
