"""Loading of what tools/record_mxnet.py recorded from MXNet 1.9.1."""

import functools
import json
import pathlib

import numpy as np
from mxnet_divergences import PURE_FLOAT16_NOT_COMPARED, known_mxnet_divergence

import mxopt
from mxopt import gluoncv

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


@functools.cache
def load(name: str) -> dict:
    """``mxnet_<name>.json``: ``schedules``, ``registry``, ``gluoncv_schedules``, ``recipes``..."""
    return json.loads((FIXTURES / f"mxnet_{name}.json").read_text())


@functools.cache
def trajectories(optimizer: str | None = None) -> list[dict]:
    """The recorded trajectory cases of one optimizer, or of all of them."""
    paths = sorted((FIXTURES / "trajectories").glob(f"{optimizer or '*'}.json"))
    return [case for path in paths for case in json.loads(path.read_text())["cases"]]


def pure_float16(case: dict) -> bool:
    """A case of float16 weights updated in float16 (no master copy)."""
    return case["dtype"] == "float16" and not case["kwargs"].get("multi_precision")


def trajectories_of(kind: str) -> list[dict]:
    """The recorded trajectories where mxopt gives MXNet's numbers (``"same"``), where it
    follows MXNet's documentation instead (``"divergent"``), or where MXNet raises."""
    def kind_of(case):
        if "mxnet_error" in case:
            return "raises"
        return "divergent" if known_mxnet_divergence(case) else "same"
    return [c for c in trajectories() if kind_of(c) == kind
            and not (pure_float16(c) and c["optimizer"] in PURE_FLOAT16_NOT_COMPARED)]


def make_scheduler(spec: dict) -> mxopt.LRScheduler | gluoncv.LRSequential:
    """An mxopt scheduler from a recorded ``{"type": ..., "kwargs": ...}``: one of MXNet's,
    or GluonCV's ``LRSequential`` of ``{"schedulers": [LRScheduler keyword arguments]}``."""
    if spec["type"] == "LRSequential":
        return gluoncv.LRSequential([gluoncv.LRScheduler(**kwargs)
                                     for kwargs in spec["kwargs"]["schedulers"]])
    return getattr(mxopt.schedules, spec["type"])(**spec["kwargs"])


def mxnet_optimizer(case: dict, **extra) -> mxopt.Optimizer:
    """A recorded case's optimizer object, built as the recorder built MXNet's.

    That is ``create(name, param_idx2name=..., **kwargs)`` over the case's
    parameter names (none where it was recorded without them, ``"named": false``),
    then ``set_lr_mult`` and ``set_wd_mult`` where it has them. SGLD's noise is
    left out, as the recorders replaced MXNet's with zeros. ``extra`` are more
    arguments (``mxnet_quirks``).
    """
    kwargs = dict(case["kwargs"], **extra)
    if "lr_scheduler" in kwargs:
        kwargs["lr_scheduler"] = make_scheduler(kwargs["lr_scheduler"])
    if case["optimizer"] == "sgld":
        kwargs["noise"] = False
    names = case.get("names") or sorted(case["initial"])
    optimizer = mxopt.optimizer.create(case["optimizer"], param_idx2name=(
        dict(enumerate(names)) if case.get("named", True) else None), **kwargs)
    optimizer.set_lr_mult(case.get("set_lr_mult", {}))
    optimizer.set_wd_mult(case.get("set_wd_mult", {}))
    return optimizer


def with_scheduler(kwargs: dict) -> dict:
    """MXNet keyword arguments with their scheduler spec, if any, made an mxopt scheduler."""
    if "lr_scheduler" not in kwargs:
        return dict(kwargs)
    return {**kwargs, "lr_scheduler": make_scheduler(kwargs["lr_scheduler"])}


def optimizer_kwargs(case: dict) -> dict:
    """mxopt keyword arguments for a recorded case: MXNet's, plus its effective multipliers."""
    return dict(with_scheduler(case["kwargs"]), lr_mult=case["lr_mult"], wd_mult=case["wd_mult"])


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in units in the last place between float16 arrays."""
    def ordered(x):
        bits = x.astype(np.float16).view(np.int16).astype(np.int32)
        return np.where(bits < 0, -32768 - bits, bits)
    return np.abs(ordered(a) - ordered(b))


def assert_matches_mxnet(got, want: np.ndarray, *, pure_float16: bool, what: str) -> None:
    """The parity tolerance: float32 within rtol 1e-5, atol 1e-6; float16 weights with
    multi_precision within one ulp; pure float16 within 2^-7."""
    got = np.asarray(got)
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, MXNet's {want.dtype}"
    if pure_float16:
        # Every float16 operation rounds, in an order that differs from
        # MXNet's kernels in places; the differences add up over steps.
        np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32),
                                   rtol=2**-7, atol=2**-9, err_msg=what)
    elif want.dtype == np.float16:  # NaN matches NaN, whatever its sign and payload
        both_nan = np.isnan(got.astype(np.float32)) & np.isnan(want.astype(np.float32))
        worst = np.where(both_nan, 0, ulp_distance(got, want)).max()
        assert worst <= 1, f"{what}: {worst} ulp from MXNet"
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=what)
