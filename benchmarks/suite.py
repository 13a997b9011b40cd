"""mxopt against optax, side by side in one run: step time, bandwidth, compile time, memory.

For each tree and optimizer it builds four jitted steps with donated params
and state, ``step(params, state, grads) -> (params, state)``:

* ``optax``: optax's equivalent optimizer over the pytree;
* ``mxopt``: the mxopt optimizer over the same pytree;
* ``mxopt packed``: the mxopt optimizer over :func:`mxopt.pack`\\ ed params;
* ``roofline``: optax's optimizer over one flat buffer of the same size, the
  same arithmetic with the fewest loops XLA can give it.

The steps are timed in turn, round after round, so that a noisy machine
slows all of them alike; the table gives medians. GB/s counts the bytes an
update must move (params, grads and state read; params and state written),
the same for every variant of a row. Peak memory is XLA's account of the
compiled step (arguments + outputs - donated + temporaries).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

import mxopt
from benchmarks import trees

# name -> (mxopt optimizer, optax equivalent), each a function of nothing
OPTIMIZERS: dict[str, tuple[Callable, Callable]] = {
    "sgd-momentum": (
        lambda: mxopt.sgd(learning_rate=0.1, momentum=0.9, wd=1e-4),
        lambda: optax.chain(optax.add_decayed_weights(1e-4), optax.sgd(0.1, momentum=0.9))),
    "nag": (
        lambda: mxopt.nag(learning_rate=0.1, momentum=0.9, wd=1e-4),
        lambda: optax.chain(optax.add_decayed_weights(1e-4),
                            optax.sgd(0.1, momentum=0.9, nesterov=True))),
    "adam": (
        lambda: mxopt.adam(learning_rate=1e-3),
        lambda: optax.adam(1e-3)),
    "lamb": (
        lambda: mxopt.lamb(learning_rate=1e-3, wd=0.01),
        lambda: optax.lamb(1e-3, weight_decay=0.01)),
}
VARIANTS = ("optax", "mxopt", "mxopt packed", "roofline")


@dataclasses.dataclass
class Step:
    """A compiled, donating step and the arrays it runs on."""

    run: Callable
    params: object
    state: object
    grads: object
    compile_s: float
    peak_bytes: int
    times: list[float] = dataclasses.field(default_factory=list)

    def time_one(self) -> None:
        start = time.perf_counter()
        self.params, self.state = self.run(self.params, self.state, self.grads)
        jax.block_until_ready((self.params, self.state))
        self.times.append(time.perf_counter() - start)


def _nbytes(tree) -> int:
    return sum(x.nbytes for x in jax.tree_util.tree_leaves(tree) if hasattr(x, "nbytes"))


def build(tx: optax.GradientTransformation, params, grads) -> Step:
    """Compiles ``tx``'s step for a copy of ``params``, with params and state donated."""
    params = jax.tree_util.tree_map(jnp.copy, params)
    state = tx.init(params)

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    start = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, state, grads).compile()
    compile_s = time.perf_counter() - start
    memory = compiled.memory_analysis()
    peak = (memory.argument_size_in_bytes + memory.output_size_in_bytes
            - memory.alias_size_in_bytes + memory.temp_size_in_bytes)
    return Step(compiled, params, state, grads, compile_s, peak)


@dataclasses.dataclass
class Row:
    tree: str
    leaves: int
    optimizer: str
    variant: str
    step_ms: float
    vs_optax: float
    gbps: float
    of_roofline: float
    compile_s: float
    peak_mib: float
    peak_ratio: float


def measure(tree: str, optimizer: str, rounds: int, device: jax.Device) -> list[Row]:
    """Times the four variants of ``optimizer`` on ``tree``, interleaved, and returns rows."""
    shapes = trees.TREES[tree]()
    make_mxopt, make_optax = OPTIMIZERS[optimizer]
    with jax.default_device(device):
        params, grads = trees.materialize(shapes, 0), trees.materialize(shapes, 1)
        flat = trees.flat_shapes(trees.size(shapes))
        steps = {
            "optax": build(make_optax(), params, grads),
            "mxopt": build(make_mxopt(), params, grads),
            "mxopt packed": build(make_mxopt(), mxopt.pack(params), mxopt.pack(grads)),
            "roofline": build(make_optax(), trees.materialize(flat, 0),
                              trees.materialize(flat, 1)),
        }
        del params, grads
        # the bytes an update must move, from the unpacked mxopt state
        step = steps["mxopt"]
        tensors = _nbytes(step.params) + _nbytes(step.state)
        moved = 2 * tensors + _nbytes(step.grads)
        held = tensors + _nbytes(step.grads)
        for s in steps.values():
            s.time_one()  # the first call of each allocates and warms caches
            s.times.clear()
        for _ in range(rounds):
            for s in steps.values():
                s.time_one()
    median = {v: statistics.median(s.times) for v, s in steps.items()}
    return [Row(tree, len(shapes), optimizer, v, 1e3 * median[v], median[v] / median["optax"],
                moved / median[v] / 1e9, median["roofline"] / median[v], s.compile_s,
                s.peak_bytes / 2**20, s.peak_bytes / held)
            for v, s in steps.items()]


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
    head = ("| tree | leaves | optimizer | variant | step ms | vs optax | GB/s | of roofline "
            "| compile s | peak MiB | peak / (p+g+s) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(f"| {r.tree} | {r.leaves} | {r.optimizer} | {r.variant} | {r.step_ms:.1f} "
                     f"| {r.vs_optax:.2f}x | {r.gbps:.1f} | {100 * r.of_roofline:.0f}% "
                     f"| {r.compile_s:.2f} | {r.peak_mib:.0f} | {r.peak_ratio:.2f} |")
    return "\n".join(lines)


def machine(device: jax.Device) -> str:
    """The device, the host's cores and the library versions, for the table's heading."""
    return (f"{device.device_kind} ({device.platform}); host {platform.machine()} with "
            f"{os.cpu_count()} cores; jax {jax.__version__}, optax {optax.__version__}")


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=jax.default_backend(),
                        help="platform to run on: cpu, gpu or tpu (default: JAX's default)")
    parser.add_argument("--trees", nargs="+", default=list(trees.DEFAULT_TREES),
                        choices=list(trees.TREES))
    parser.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS),
                        choices=list(OPTIMIZERS))
    parser.add_argument("--rounds", type=int, default=20, help="timed steps of each variant")
    args = parser.parse_args(argv)
    device = jax.devices(args.device)[0]
    print(f"# {machine(device)}; median of {args.rounds} steps", flush=True)
    rows = []
    for tree in args.trees:
        for optimizer in args.optimizers:
            new = measure(tree, optimizer, args.rounds, device)
            print(table(new).split("\n", 2)[2] if rows else table(new), flush=True)
            rows += new
    return rows
