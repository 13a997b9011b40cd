"""Every registered optimizer built with all of its state, for tests that run them all."""

import jax.numpy as jnp
import numpy as np

import mxopt

# Arguments that give each optimizer its full state (a momentum buffer, LAMB's bounds,
# centered RMSProp's mean), with weight decay wherever MXNet allows it.
KWARGS = {name: {"momentum": 0.9} for name in ("sgd", "ccsgd", "nag", "signum", "dcasgd",
                                               "lars", "lbsgd")}
KWARGS["rmsprop"] = {"centered": True}
KWARGS["lamb"] = {"lower_bound": 1e-3, "upper_bound": 10.0}
NO_WEIGHT_DECAY = {"groupadagrad", "test"}


def build(name: str, **kwargs):
    """``mxopt.create(name)`` with its full state and ``wd=1e-3``; ``kwargs`` override."""
    defaults = {"wd": 0.0 if name in NO_WEIGHT_DECAY else 1e-3, **KWARGS.get(name, {})}
    return mxopt.create(name, **{**defaults, **kwargs})


def accepted(name: str, shapes: dict) -> dict:
    """``shapes`` ({leaf: shape or (shape, ...)}) without the leaves ``name`` refuses:
    GroupAdaGrad takes 2-D weights only."""
    def shape(v):
        return v[0] if isinstance(v[0], tuple) else v
    return {k: v for k, v in shapes.items() if name != "groupadagrad" or len(shape(v)) == 2}


def draw(shapes: dict, seed: int, dtype=jnp.float32) -> dict:
    """A tree of standard normal draws, ``{leaf: array of shape}``."""
    rng = np.random.default_rng(seed)
    return {k: jnp.asarray(rng.normal(size=s), dtype) for k, s in shapes.items()}
