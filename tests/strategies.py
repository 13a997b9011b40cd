"""Hypothesis strategies shared by the tests."""

import hypothesis.strategies as st
import numpy as np

_TINY = float(np.finfo(np.float32).tiny)


def floats(low: float, high: float) -> st.SearchStrategy[float]:
    """Reals in ``[low, high]`` as float32 holds them: a magnitude below its smallest normal
    number, which it would flush to zero (and mxopt refuses), is drawn as 0."""
    return st.floats(low, high).map(lambda x: 0.0 if abs(x) < _TINY else x)


SCHEDULER_KINDS = ("FactorScheduler", "MultiFactorScheduler", "PolyScheduler", "CosineScheduler")


@st.composite
def schedulers(draw, kinds=SCHEDULER_KINDS, *, horizon: int = 30, lowest_lr: float = 0.0):
    """An MXNet scheduler spec, ``{"type": ..., "kwargs": ...}``, of one of ``kinds``, with or
    without warmup, whose steps and ends fall within ``horizon`` updates and whose rates are
    at least ``lowest_lr`` (LARS's momentum correction treats a rate of 0 apart)."""
    kind = draw(st.sampled_from(kinds))
    base_lr = draw(floats(max(0.01, 2 * lowest_lr), 0.5))
    kw = {"base_lr": base_lr}
    if draw(st.booleans()):
        kw.update(warmup_steps=draw(st.integers(1, min(6, horizon // 3))),
                  warmup_begin_lr=draw(floats(lowest_lr, base_lr)),
                  warmup_mode=draw(st.sampled_from(["linear", "constant"])))
    if kind == "FactorScheduler":
        kw.update(step=draw(st.integers(1, 4)), factor=draw(floats(0.2, 1.0)))
    elif kind == "MultiFactorScheduler":
        kw.update(step=sorted(draw(st.sets(st.integers(1, horizon), min_size=1, max_size=4))),
                  factor=draw(floats(0.2, 1.0)))
    else:
        kw.update(max_update=draw(st.integers(kw.get("warmup_steps", 0) + 1, horizon)),
                  final_lr=draw(floats(lowest_lr, base_lr / 2)))
        if kind == "PolyScheduler":
            kw["pwr"] = draw(st.sampled_from([0.5, 1, 2, 3]))
    return {"type": kind, "kwargs": kw}


def base_arguments(draw, kw: dict, names, *, wd: float | None = 0.1,
                   begin_num_update: int | None = None, lr_mults=(1.0, 0.5, 2.0)) -> tuple:
    """``(kw, lr_mult, wd_mult)``: ``kw`` with some of MXNet's base arguments drawn into it,
    each given or not (``wd`` up to ``wd``, ``rescale_grad``, ``clip_gradient``,
    ``begin_num_update`` up to ``begin_num_update``; ``None``: never), and per-leaf
    multipliers for ``names``. ``draw`` is a composite strategy's."""
    for arg, low, high in (("wd", 0, wd), ("rescale_grad", 0.05, 2.0),
                           ("clip_gradient", 0.05, 2.0)):
        if high is not None and draw(st.booleans()):
            kw[arg] = draw(floats(low, high))
    if begin_num_update is not None and draw(st.booleans()):
        kw["begin_num_update"] = draw(st.integers(0, begin_num_update))
    lr_mult = {n: draw(st.sampled_from(lr_mults)) for n in names}
    wd_mult = {n: draw(st.sampled_from([1.0, 0.0, 1.5])) for n in names}
    return kw, lr_mult, wd_mult
