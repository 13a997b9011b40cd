"""Loading of what tools/record_mxnet.py recorded from MXNet 1.9.1."""

import functools
import json
import pathlib

import mxopt

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


@functools.cache
def load(name: str) -> dict:
    """``mxnet_<name>.json``: ``schedules`` or ``registry``."""
    return json.loads((FIXTURES / f"mxnet_{name}.json").read_text())


@functools.cache
def trajectories(optimizer: str | None = None) -> list[dict]:
    """The recorded trajectory cases of one optimizer, or of all of them."""
    paths = sorted((FIXTURES / "trajectories").glob(f"{optimizer or '*'}.json"))
    return [case for path in paths for case in json.loads(path.read_text())["cases"]]


def make_scheduler(spec: dict) -> mxopt.LRScheduler:
    """An mxopt scheduler from a recorded ``{"type": ..., "kwargs": ...}``."""
    return getattr(mxopt.schedules, spec["type"])(**spec["kwargs"])


def optimizer_kwargs(case: dict) -> dict:
    """mxopt keyword arguments for a recorded case: MXNet's, plus its effective multipliers."""
    kwargs = dict(case["kwargs"])
    if "lr_scheduler" in kwargs:
        kwargs["lr_scheduler"] = make_scheduler(kwargs["lr_scheduler"])
    return dict(kwargs, lr_mult=case["lr_mult"], wd_mult=case["wd_mult"])
