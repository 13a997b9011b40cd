"""Issue 18's targets, checked against the rows of one benchmark run.

Each target names the rows it reads and the bound they must keep; :func:`table`
gives, per target, the figure of each of those rows and whether all keep it.
The docs build makes the targets table of ``docs/performance.md`` with it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from benchmarks.suite import Row

TREES = ("resnet50", "transformer")
COMPILE_TREE = "3000-leaves"


@dataclasses.dataclass(frozen=True)
class Target:
    what: str
    optimizers: tuple[str, ...]
    trees: tuple[str, ...]
    figure: Callable[[dict[str, Row]], float]  # of one tree's and optimizer's rows, by variant
    form: str  # how a figure is written: "{:.2f}x", "{:.0%}"
    met: Callable[[float], bool]


def _ratio(variant: str, column: str, of: str = "optax") -> Callable[[dict[str, Row]], float]:
    return lambda rows: getattr(rows[variant], column) / getattr(rows[of], column)


TARGETS = (
    Target("pytree step ≤ 1.0x optax", ("sgd-momentum", "nag", "adam"), TREES,
           _ratio("mxopt", "step_ms"), "{:.2f}x", lambda x: x <= 1.0),
    Target("pytree LAMB step ≤ 0.8x optax", ("lamb",), TREES,
           _ratio("mxopt", "step_ms"), "{:.2f}x", lambda x: x <= 0.8),
    Target("pytree compile ≤ 1.0x optax at 3,000 leaves", ("sgd-momentum", "nag", "adam", "lamb"),
           (COMPILE_TREE,), _ratio("mxopt", "compile_s"), "{:.2f}x", lambda x: x <= 1.0),
    Target("packed ≥ 90% of the roofline", ("sgd-momentum", "nag", "adam", "lamb"), TREES,
           lambda rows: rows["mxopt packed"].of_roofline, "{:.0%}", lambda x: x >= 0.9),
    Target("packed compile ≤ 0.05x optax's pytree compile at 3,000 leaves",
           ("sgd-momentum", "nag", "adam", "lamb"), (COMPILE_TREE,),
           _ratio("mxopt packed", "compile_s"), "{:.3f}x", lambda x: x <= 0.05),
    Target("peak memory of a donated step ≤ 1.1x params + grads + state",
           ("sgd-momentum", "nag", "adam"), TREES,
           lambda rows: max(rows[v].peak_ratio for v in ("mxopt", "mxopt packed")), "{:.2f}",
           lambda x: x <= 1.1),
    Target("LAMB's peak memory ≤ 1.3x params + grads + state", ("lamb",), TREES,
           lambda rows: max(rows[v].peak_ratio for v in ("mxopt", "mxopt packed")), "{:.2f}",
           lambda x: x <= 1.3),
)


def table(rows: list[Row]) -> str:
    """The targets as a Markdown table: each figure (by optimizer, and tree where there are
    two) and whether every one keeps its bound. A target whose rows the run lacks is left out."""
    by_key: dict[tuple[str, str], dict[str, Row]] = {}
    for r in rows:
        by_key.setdefault((r.tree, r.optimizer), {})[r.variant] = r
    lines = ["| target | measured | met? |", "|---|---|---|"]
    for target in TARGETS:
        figures, kept = [], []
        for optimizer in target.optimizers:
            found = [by_key[t, optimizer] for t in target.trees if (t, optimizer) in by_key]
            if not found:
                continue
            values = [target.figure(r) for r in found]
            kept += [target.met(v) for v in values]
            figures.append(f"{optimizer} " + " / ".join(target.form.format(v) for v in values))
        if figures:
            lines.append(f"| {target.what} | {'; '.join(figures)} "
                         f"| {'yes' if all(kept) else 'no'} |")
    return "\n".join(lines)
