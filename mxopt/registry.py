"""Optimizers by name, as ``mx.optimizer.create`` finds them, each with one declaration.

An optimizer is declared once, where its math is: its pure constructor, the
name :func:`create` finds it by (case-insensitive), and what MXNet's object
surface and saved files need to know of it (:class:`MXNet`)::

    @register(mxnet=MXNet("SGD", state=lambda args: "trace" if args["momentum"] else None,
                          master_last=True))
    @optimizer
    def sgd(momentum=0.0, *, base): ...

:mod:`mxopt.mxnet.objects` makes each declaration's object class (``SGD``) and
:mod:`mxopt.mxnet.importer` reads MXNet's saved states by its ``state``; no
other module keeps a fact about one optimizer.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import jax
import optax

from mxopt.base import Optimization

Constructor = Callable[..., optax.GradientTransformation]


class Negated(str):
    """A state field that MXNet keeps with the opposite sign (in an :attr:`MXNet.state`)."""


# How MXNet's ``create_state`` nests the state of one parameter: None (no
# state), the mxopt state field an array goes to, or a tuple of nestings.
Layout = None | str | tuple


@dataclasses.dataclass(frozen=True)
class Unimportable:
    """An :attr:`MXNet.state` saying why MXNet's saved states cannot be imported."""

    reason: str


def _no_index_arguments(arguments: Mapping[str, Any], name: str) -> dict[str, Any]:
    del arguments, name
    return {}


@dataclasses.dataclass(frozen=True)
class MXNet:
    """What MXNet knows of an optimizer beside its formula.

    Attributes:
      class_name: MXNet's class (``"SGD"``, ``"ccSGD"``, ``"AdaGrad"``); the
        object surface's class of that name updates with the optimizer.
      state: how MXNet's ``create_state`` nests one parameter's state: a
        :data:`Layout` of mxopt state-field names (:class:`Negated` where
        MXNet keeps the opposite sign), or a function of the optimizer's
        arguments (a mapping) returning one; or :class:`Unimportable`.
      master_last: MXNet's ``create_state_multi_precision`` puts the float32
        master copy after the state (SGD's family, GluonNLP's BERTAdam), not
        before.
      decayed_suffixes: the parameter names (from ``param_idx2name``) that
        keep weight decay by default; others get ``wd_mult`` 0.
      index_arguments: constructor arguments that differ between MXNet's
        indices, ``index_arguments(arguments, index_name) -> dict`` (LARS's
        exemption of biases and BatchNorm parameters, by name).
      renamed: MXNet attributes that mxopt's constructor calls by another
        name (AdaGrad's ``float_stable_eps`` is ``eps``).
      scheduler_ignores_learning_rate: MXNet's class does not pass
        ``learning_rate`` on to a scheduler (FTRL): a saved one is dropped
        when a scheduler is saved beside it.
      aggregate_num: how many indices MXNet's ``Updater`` updates in one
        call (its ``aggregate_num``; 0: one at a time).
      shared_state: state fields that MXNet keeps once, in the optimizer
        object, for all indices (Nadam's momentum schedule, LARS's last
        rate). With ``mxnet_quirks`` the object surface carries them from
        each update call to the next; every index of one call starts from
        the value the call started with.
      saved_shared_state: the :attr:`shared_state` values from the attributes
        MXNet pickles with the optimizer (Nadam's ``m_schedule``), for a
        ``.states`` import; ``None``: they are not imported.
      one_index_drops: state fields that MXNet's one-index update does not
        write back (LAMB's master copy, in its one-tensor kernel); with
        ``mxnet_quirks`` an update of one index (not a list) keeps their
        old values.
    """

    class_name: str
    state: Layout | Callable[[Mapping[str, Any]], Layout] | Unimportable = Unimportable(
        "its MXNet state layout is not declared (mxopt.registry.MXNet.state)")
    master_last: bool = False
    decayed_suffixes: tuple[str, ...] = ("_weight", "_gamma")
    index_arguments: Callable[[Mapping[str, Any], str], dict[str, Any]] = _no_index_arguments
    renamed: Mapping[str, str] = dataclasses.field(default_factory=dict)
    scheduler_ignores_learning_rate: bool = False
    aggregate_num: int = 0
    shared_state: tuple[str, ...] = ()
    saved_shared_state: Callable[[Mapping[str, Any]], dict[str, float]] | None = None
    one_index_drops: tuple[str, ...] = ()

    def layout(self, arguments: Mapping[str, Any]) -> Layout:
        """The nesting of MXNet's state for an optimizer of these arguments
        (only where :attr:`state` is not :class:`Unimportable`)."""
        return self.state(arguments) if callable(self.state) else self.state


@dataclasses.dataclass(frozen=True, eq=False)
class Declaration:
    """One registered optimizer: its name, its constructor and its :class:`MXNet` facts."""

    name: str
    constructor: Constructor
    mxnet: MXNet

    def builds_with(self, constructor: Constructor) -> bool:
        """Whether ``constructor`` is this declaration's, or the function it wraps."""
        return constructor in (self.constructor, getattr(self.constructor, "__wrapped__", None))


_DECLARATIONS: dict[str, Declaration] = {}


def _described(constructor: Constructor) -> Constructor:
    """Wraps an optimizer constructor so that what it builds reprs as the call.

    ``_described(sgd)(momentum=0.9, learning_rate=0.1)`` reprs as
    ``sgd(momentum=0.9, learning_rate=0.1)``: the arguments given, not the defaults.
    Where ``learning_rate`` (given, or the optimizer's default) overrides the
    ``base_lr`` of an ``lr_scheduler`` given, a comment adds the schedule it steps with.
    """
    if getattr(constructor, "describes", False):
        return constructor
    signature = inspect.signature(constructor)

    @functools.wraps(constructor)
    def build(*args, **kwargs):
        tx = constructor(*args, **kwargs)
        if isinstance(tx, Optimization) and not any(
                isinstance(value, jax.core.Tracer) for value in (*args, *kwargs.values())):
            positional = list(signature.bind_partial(*args).arguments.items())
            shown = ", ".join(f"{name}={value!r}" for name, value in
                              [*positional, *kwargs.items()])
            tx.call = f"{constructor.__name__}({shown})"
            given = kwargs.get("lr_scheduler")
            if given is not None and tx.learning_rate != given:  # a learning_rate overrode it
                tx.call += f"  # steps with {tx.learning_rate!r}"
        return tx

    build.describes = True
    return build


def register(constructor: Constructor | None = None, *, name: str | None = None,
             mxnet: MXNet | None = None):
    """Registers ``constructor`` under ``name`` (default: its ``__name__``).

    Usable as ``@register``, ``@register(name="sgd", mxnet=MXNet(...))`` or
    ``register(fn)``. ``mxnet`` is what MXNet knows of it (default: that of
    ``fn``'s declaration under another name, if any, else a class named as
    the constructor whose saved states cannot be imported). It
    returns ``fn`` wrapped so that an optimizer it builds reprs as the call
    that built it. Registering a taken name replaces it, with a warning, as
    in MXNet.
    """
    def add(fn: Constructor) -> Constructor:
        fn = _described(fn)
        key = (name or fn.__name__).lower()
        previous = _DECLARATIONS.get(key)
        if previous is not None and not previous.builds_with(fn.__wrapped__):
            warnings.warn(f"optimizer {key!r} is overridden by {fn.__module__}.{fn.__qualname__}",
                          stacklevel=3)
        facts = mxnet or mxnet_facts(fn.__wrapped__) or MXNet(fn.__name__)
        _DECLARATIONS[key] = Declaration(key, fn, facts)
        return fn

    return add if constructor is None else add(constructor)


def unregister(name: str) -> Declaration:
    """Removes the optimizer registered as ``name`` (case-insensitive) and returns its
    declaration (ValueError if there is none)."""
    return _DECLARATIONS.pop(declaration(name).name)


def registered_names() -> list[str]:
    """The names :func:`create` accepts, sorted."""
    return sorted(_DECLARATIONS)


def declaration(name: str) -> Declaration:
    """The declaration registered as ``name`` (case-insensitive).

    Raises:
      ValueError: no optimizer has that name (the message lists them).
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in _DECLARATIONS:
        raise ValueError(f"unknown optimizer {name!r}; registered: {', '.join(registered_names())}")
    return _DECLARATIONS[key]


def declarations() -> list[Declaration]:
    """Every declaration, in registration order."""
    return list(_DECLARATIONS.values())


def mxnet_facts(constructor: Constructor) -> MXNet | None:
    """The :class:`MXNet` facts of the first declaration of ``constructor``, if any."""
    return next((d.mxnet for d in _DECLARATIONS.values() if d.builds_with(constructor)), None)


def lookup(name: str) -> Constructor:
    """The constructor registered as ``name`` (case-insensitive); see :func:`declaration`."""
    return declaration(name).constructor


def create(name: str, **kwargs) -> optax.GradientTransformation:
    """Builds the optimizer registered as ``name`` with MXNet's keyword arguments.

    Raises:
      ValueError: no optimizer has that name (the message lists them).
    """
    return lookup(name)(**kwargs)
