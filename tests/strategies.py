"""Hypothesis strategies shared by the tests."""

import hypothesis.strategies as st
import numpy as np

_TINY = float(np.finfo(np.float32).tiny)


def floats(low: float, high: float) -> st.SearchStrategy[float]:
    """Reals in ``[low, high]`` as float32 holds them: a magnitude below its smallest normal
    number, which it would flush to zero (and mxopt refuses), is drawn as 0."""
    return st.floats(low, high).map(lambda x: 0.0 if abs(x) < _TINY else x)
