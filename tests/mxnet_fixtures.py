"""Loading of the trajectories and schedules recorded from MXNet 1.9.1 (tools/record_mxnet.py)."""

import functools
import json
import pathlib

import mxopt

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


@functools.cache
def load(name: str) -> dict:
    return json.loads((FIXTURES / f"mxnet_{name}.json").read_text())


def make_scheduler(spec: dict) -> mxopt.LRScheduler:
    """An mxopt scheduler from a recorded ``{"type": ..., "kwargs": ...}``."""
    return getattr(mxopt.schedules, spec["type"])(**spec["kwargs"])


def optimizer_kwargs(case: dict) -> dict:
    """mxopt keyword arguments for a recorded case: MXNet's, plus its effective multipliers."""
    kwargs = dict(case["kwargs"])
    if "lr_scheduler" in kwargs:
        kwargs["lr_scheduler"] = make_scheduler(kwargs["lr_scheduler"])
    return dict(kwargs, lr_mult=case["lr_mult"], wd_mult=case["wd_mult"])
