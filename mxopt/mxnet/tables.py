"""MXNet's per-parameter tables: indices, multipliers by index or name, ``sym``'s attributes.

MXNet keys its per-parameter settings by an index (an int, or a str name)
and reads ``lr_mult``/``wd_mult`` from ``set_lr_mult``, ``param_dict`` and a
Symbol's ``__lr_mult__``/``__wd_mult__`` attributes; these are the checks
of those tables that :mod:`mxopt.mxnet.objects` and
:mod:`mxopt.mxnet.updater` share.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from mxopt import validation

Index = int | str


def is_index(x: Any) -> bool:
    """MXNet's per-index calls pass an int or str index, or a list of them."""
    if isinstance(x, (list, tuple)):
        return bool(x) and all(is_index(i) for i in x)
    return isinstance(x, (int, str, np.integer)) and not isinstance(x, bool)


def sym_info(sym: Any) -> tuple[dict, list] | tuple[()]:
    """MXNet's ``(attr_dict, arg_names)`` from a Symbol-like object or a name->attrs mapping."""
    if sym is None:
        return ()
    if hasattr(sym, "attr_dict") and hasattr(sym, "list_arguments"):
        return dict(sym.attr_dict()), list(sym.list_arguments())
    if isinstance(sym, Mapping) and all(isinstance(v, Mapping) for v in sym.values()):
        return {k: dict(v) for k, v in sym.items()}, list(sym)
    raise ValueError("sym must map parameter names to attribute dicts (e.g. "
                     f"{{'fc_weight': {{'__lr_mult__': '2'}}}}) or be an MXNet Symbol, got {sym!r}")


def is_attributes(attrs: Any) -> bool:
    """Whether ``attrs`` is ``sym.attr_dict()``'s kind: name -> {attribute: str}."""
    return isinstance(attrs, Mapping) and all(
        isinstance(name, str) and isinstance(a, Mapping)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in a.items())
        for name, a in attrs.items())


def index_key(arg: str, index: Any) -> Index:
    if not is_index(index) or isinstance(index, (list, tuple)):
        raise ValueError(f"{arg} has key {reprlib.repr(index)}, not an int or str index")
    return index if isinstance(index, str) else int(index)


def checked_multipliers(arg: str, table: Mapping[Index, float]) -> dict[Index, float]:
    """``table`` checked: indices or names to finite reals >= 0."""
    if not isinstance(table, Mapping):
        raise ValueError(f"{arg} must map indices or names to numbers, got {reprlib.repr(table)}")
    return {index_key(arg, i): validation.non_negative(f"{arg}[{i!r}]", m)
            for i, m in table.items()}


def sym_multipliers(sym_info, attribute: str) -> dict[str, float]:
    if not sym_info:
        return {}
    attrs, names = sym_info
    return checked_multipliers(f"sym's {attribute}", {
        n: float(attrs[n][attribute]) for n in names if attribute in attrs.get(n, {})})
