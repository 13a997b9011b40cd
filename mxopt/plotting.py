"""Plots of learning-rate and momentum schedules, for notebooks.

matplotlib is an optional dependency: ``pip install matplotlib``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from mxopt.schedules import Schedule
from mxopt.validation import count

if TYPE_CHECKING:
    from matplotlib.axes import Axes


@runtime_checkable
class CountedSchedule(Protocol):
    """A schedule that computes its values from update counts itself, and says what they
    are: MXNet.jl's schedulers (:mod:`mxopt.julia`), which see an ``OptimizationState``."""

    quantity: str  # "learning rate", "momentum"

    def values_at(self, num_update: jax.Array, steps_per_epoch: int) -> jax.Array: ...


def schedule_values(schedule: float | Schedule | CountedSchedule, num_steps: int, *,
                    begin_num_update: int = 0, steps_per_epoch: int = 1) -> np.ndarray:
    """The value a schedule gives at each of ``num_steps`` updates, as a float array.

    The ``k``-th update (``k = 1 .. num_steps``) sees
    ``num_update = begin_num_update + k``, as MXNet's optimizers count. An
    MXNet.jl scheduler sees the ``OptimizationState`` of that update:
    ``curr_iter = num_update``, in epoch ``1 + (num_update - 1) // steps_per_epoch``.
    For ``Momentum.NadamScheduler`` the value is ``mu_t``, the first of its pair.

    Args:
      schedule: a number, a schedule of the update count (any mxopt scheduler
        or jit-able callable), or an MXNet.jl learning-rate or momentum scheduler.
      num_steps: how many updates, >= 1.
      begin_num_update: the update count before the first update.
      steps_per_epoch: updates per epoch, for MXNet.jl schedulers that decay per epoch.
    """
    num_steps = count("num_steps", num_steps, minimum=1)
    steps_per_epoch = count("steps_per_epoch", steps_per_epoch, minimum=1)
    n = jnp.arange(1, num_steps + 1) + count("begin_num_update", begin_num_update)
    if isinstance(schedule, CountedSchedule):
        values = schedule.values_at(n, steps_per_epoch)
    elif callable(schedule):
        values = jax.vmap(schedule)(n)
    else:
        values = schedule
    return np.broadcast_to(np.asarray(values, np.float64), (num_steps,))


def plot_schedule(schedule: float | Schedule | CountedSchedule, num_steps: int, *,
                  ax: Axes | None = None, label: str | None = None, begin_num_update: int = 0,
                  steps_per_epoch: int = 1) -> Axes:
    """Plots a schedule's value against the update count; returns the matplotlib Axes.

    The values are :func:`schedule_values`'s. Call it several times with the
    same ``ax`` and a ``label`` each to compare schedules on one plot.

    Args:
      schedule: a number, a schedule of the update count, or an MXNet.jl scheduler.
      num_steps: how many updates to plot.
      ax: the Axes to draw on; a new figure's by default.
      label: the line's legend entry; without one there is no legend.
      begin_num_update: the update count before the first update.
      steps_per_epoch: updates per epoch, for MXNet.jl schedulers that decay per epoch.

    Raises:
      ImportError: matplotlib is not installed.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("plot_schedule needs matplotlib: pip install matplotlib") from error
    values = schedule_values(schedule, num_steps, begin_num_update=begin_num_update,
                             steps_per_epoch=steps_per_epoch)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    steps = np.arange(1, num_steps + 1) + begin_num_update
    ax.plot(steps, values, label=label)
    ax.set_xlabel("update count (num_update)")
    ax.set_ylabel(schedule.quantity if isinstance(schedule, CountedSchedule)
                  else "learning rate")
    if label is not None:
        ax.legend()
    return ax
