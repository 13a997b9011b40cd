"""Hypothesis strategies shared by the tests."""

import hypothesis.strategies as st
import numpy as np

_TINY = float(np.finfo(np.float32).tiny)


def floats(low: float, high: float) -> st.SearchStrategy[float]:
    """Reals in ``[low, high]`` as float32 holds them: a magnitude below its smallest normal
    number, which it would flush to zero (and mxopt refuses), is drawn as 0."""
    return st.floats(low, high).map(lambda x: 0.0 if abs(x) < _TINY else x)


@st.composite
def schedulers(draw):
    """An MXNet scheduler spec, ``{"type": ..., "kwargs": ...}``, of each kind with warmup."""
    kind = draw(st.sampled_from(["FactorScheduler", "MultiFactorScheduler", "PolyScheduler",
                                 "CosineScheduler"]))
    base_lr = draw(floats(0.01, 0.5))
    kw = {"base_lr": base_lr}
    if draw(st.booleans()):
        kw.update(warmup_steps=draw(st.integers(1, 6)),
                  warmup_begin_lr=draw(floats(0, base_lr)),
                  warmup_mode=draw(st.sampled_from(["linear", "constant"])))
    if kind == "FactorScheduler":
        kw.update(step=draw(st.integers(1, 4)), factor=draw(floats(0.2, 1.0)))
    elif kind == "MultiFactorScheduler":
        kw.update(step=sorted(draw(st.sets(st.integers(1, 30), min_size=1, max_size=4))),
                  factor=draw(floats(0.2, 1.0)))
    else:
        kw.update(max_update=draw(st.integers(kw.get("warmup_steps", 0) + 1, 30)),
                  final_lr=draw(floats(0, base_lr / 2)))
        if kind == "PolyScheduler":
            kw["pwr"] = draw(st.sampled_from([0.5, 1, 2, 3]))
    return {"type": kind, "kwargs": kw}
