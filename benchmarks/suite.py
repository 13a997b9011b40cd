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
the same for every variant of a row, and is compared with the machine's
bandwidth, measured at the start by a jitted ``x * 2`` over 256 MiB. Peak
memory is XLA's account of the compiled step (arguments + outputs - donated
+ temporaries).

Two more kinds of rows: a sweep of trees of one size cut into more and more
leaves (``--sweep``), and a Flax NNX model's whole training step, forward,
backward and update (``--training``), where the optimizer's share of the
step shows. ``--json PATH`` writes every row, the machine and the command,
which the docs' table and plot are made from.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
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
    "rmsprop": (
        lambda: mxopt.rmsprop(learning_rate=1e-3),
        lambda: optax.rmsprop(1e-3, decay=0.9, eps=1e-8)),
    "adagrad": (
        lambda: mxopt.adagrad(learning_rate=0.01),
        lambda: optax.adagrad(0.01, initial_accumulator_value=0.0, eps=1e-7)),
}
VARIANTS = ("optax", "mxopt", "mxopt packed", "roofline")


@dataclasses.dataclass
class Step:
    """A compiled, donating step and the arrays it runs on."""

    run: Callable
    params: object
    state: object
    grads: object
    compile_s: float  # trace_s + lower_s + XLA's compile
    trace_s: float
    lower_s: float
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

    return compiled(step, params, state, grads)


def compiled(step: Callable, params, state, inputs) -> Step:
    """``step(params, state, inputs) -> (params, state)`` compiled, params and state donated,
    and the time its three stages took: tracing to a jaxpr, lowering to StableHLO, XLA."""
    start = time.perf_counter()
    traced = jax.jit(step, donate_argnums=(0, 1)).trace(params, state, inputs)
    traced_at = time.perf_counter()
    lowered = traced.lower()
    lowered_at = time.perf_counter()
    run = lowered.compile()
    compile_s = time.perf_counter() - start
    memory = run.memory_analysis()
    peak = (memory.argument_size_in_bytes + memory.output_size_in_bytes
            - memory.alias_size_in_bytes + memory.temp_size_in_bytes)
    return Step(run, params, state, inputs, compile_s, traced_at - start,
                lowered_at - traced_at, peak)


@dataclasses.dataclass
class Row:
    tree: str
    leaves: int
    optimizer: str
    variant: str
    step_ms: float
    vs_optax: float
    compile_s: float
    peak_mib: float
    trace_s: float | None = None  # of compile_s: tracing, lowering; the rest is XLA's
    lower_s: float | None = None
    # update rows:
    gbps: float | None = None
    of_bandwidth: float | None = None
    of_roofline: float | None = None
    peak_ratio: float | None = None
    # training rows: the update's part of the step
    update_share: float | None = None


def bandwidth(device: jax.Device) -> float:
    """The device's streaming bandwidth in GB/s: a jitted, donated ``x * 2`` over 256 MiB."""
    with jax.default_device(device):
        x = jnp.ones(2**26, jnp.float32)
        double = jax.jit(lambda x: x * 2, donate_argnums=0)
        times = []
        for _ in range(8):
            start = time.perf_counter()
            x = double(x).block_until_ready()
            times.append(time.perf_counter() - start)
    return 2 * x.nbytes / statistics.median(times[1:]) / 1e9


def _interleaved(steps: dict[str, Step], rounds: int) -> dict[str, float]:
    """Each step's median time over ``rounds`` rounds that run every step in turn."""
    for s in steps.values():
        s.time_one()  # the first call of each allocates and warms caches
        s.times.clear()
    for _ in range(rounds):
        for s in steps.values():
            s.time_one()
    return {v: statistics.median(s.times) for v, s in steps.items()}


def _builders(shapes: dict[str, tuple], make_mxopt: Callable,
              make_optax: Callable) -> dict[str, Callable[[], Step]]:
    """The four variants' step builders, over one tree of ``shapes`` (the arrays go with them)."""
    params, grads = trees.materialize(shapes, 0), trees.materialize(shapes, 1)
    packed_params, packed_grads = mxopt.pack(params), mxopt.pack(grads)
    flat = trees.flat_shapes(trees.size(shapes))
    flat_params, flat_grads = trees.materialize(flat, 0), trees.materialize(flat, 1)
    return {"optax": lambda: build(make_optax(), params, grads),
            "mxopt": lambda: build(make_mxopt(), params, grads),
            "mxopt packed": lambda: build(make_mxopt(), packed_params, packed_grads),
            "roofline": lambda: build(make_optax(), flat_params, flat_grads)}


def _compiled_in_turn(builders: dict[str, Callable[[], Step]], compiles: int) -> dict[str, Step]:
    """Each variant's step built ``compiles`` times, the variants in turn (in reverse order
    every other round, so that none is always first): the last build of each, with the
    times of its median compile."""
    times: dict[str, list[tuple]] = {v: [] for v in builders}
    steps: dict[str, Step] = {}
    for round_ in range(compiles):
        for v in (builders if round_ % 2 == 0 else reversed(builders)):
            steps.pop(v, None)  # the last build's arrays go first
            steps[v] = builders[v]()
            times[v].append((steps[v].compile_s, steps[v].trace_s, steps[v].lower_s))
    for v, s in steps.items():
        s.compile_s, s.trace_s, s.lower_s = sorted(times[v])[len(times[v]) // 2]
    return {v: steps[v] for v in builders}


def measure(tree: str, optimizer: str, rounds: int, device: jax.Device,
            machine_gbps: float, shapes: dict[str, tuple] | None = None,
            compiles: int = 1) -> list[Row]:
    """Times the four variants of ``optimizer`` on ``tree``, interleaved, and returns rows;
    each compile time is the median of ``compiles``, the variants compiled in turn."""
    shapes = shapes or trees.TREES[tree]()
    make_mxopt, make_optax = OPTIMIZERS[optimizer]
    with jax.default_device(device):
        steps = _compiled_in_turn(_builders(shapes, make_mxopt, make_optax), compiles)
        # the bytes an update must move, from the unpacked mxopt state
        step = steps["mxopt"]
        tensors = _nbytes(step.params) + _nbytes(step.state)
        moved = 2 * tensors + _nbytes(step.grads)
        held = tensors + _nbytes(step.grads)
        median = _interleaved(steps, rounds)
    return [Row(tree, len(shapes), optimizer, v, 1e3 * median[v], median[v] / median["optax"],
                s.compile_s, s.peak_bytes / 2**20, s.trace_s, s.lower_s,
                gbps=moved / median[v] / 1e9, of_bandwidth=moved / median[v] / 1e9 / machine_gbps,
                of_roofline=median["roofline"] / median[v], peak_ratio=s.peak_bytes / held)
            for v, s in steps.items()]


def measure_training(optimizer: str, rounds: int, device: jax.Device) -> list[Row]:
    """A Flax NNX MLP's jitted training step (loss, grads, update) with optax and with mxopt.

    Each row's ``update_share`` is the update step alone (timed in the same
    rounds, on the model's params) over the whole training step.
    """
    from flax import nnx

    from benchmarks import models
    make_mxopt, make_optax = OPTIMIZERS[optimizer]
    with jax.default_device(device):
        model = models.MLP(nnx.Rngs(0))
        graphdef, params = nnx.split(model, nnx.Param)
        x, y = models.batch()
        steps = {}
        for variant, make in (("optax", make_optax), ("mxopt", make_mxopt)):
            tx = make()
            steps[f"{variant} training step"] = models.training_step(graphdef, tx, params, x, y)
            steps[f"{variant} update"] = build(tx, params, jax.tree.map(jnp.ones_like, params))
        median = _interleaved(steps, rounds)
    rows = []
    for variant in ("optax", "mxopt"):
        s, t = steps[f"{variant} training step"], median[f"{variant} training step"]
        rows.append(Row("nnx-mlp", len(jax.tree.leaves(params)), optimizer,
                        f"{variant} training step", 1e3 * t, t / median["optax training step"],
                        s.compile_s, s.peak_bytes / 2**20, s.trace_s, s.lower_s,
                        update_share=median[f"{variant} update"] / t))
    return rows


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table (``-`` where a column does not apply)."""
    head = ("| tree | leaves | optimizer | variant | step ms | vs optax | GB/s | of bandwidth "
            "| of roofline | compile s | trace / lower / XLA s | peak MiB | peak / (p+g+s) "
            "| update share |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]

    def shown(value: float | None, form: str) -> str:
        return "-" if value is None else format(value, form)

    def stages(r: Row) -> str:
        if r.trace_s is None:
            return "-"
        return f"{r.trace_s:.2f} / {r.lower_s:.2f} / {r.compile_s - r.trace_s - r.lower_s:.2f}"

    for r in rows:
        lines.append(f"| {r.tree} | {r.leaves} | {r.optimizer} | {r.variant} | {r.step_ms:.1f} "
                     f"| {r.vs_optax:.2f}x | {shown(r.gbps, '.1f')} "
                     f"| {shown(r.of_bandwidth, '.0%')} | {shown(r.of_roofline, '.0%')} "
                     f"| {r.compile_s:.2f} | {stages(r)} | {r.peak_mib:.0f} "
                     f"| {shown(r.peak_ratio, '.2f')} "
                     f"| {shown(r.update_share, '.0%')} |")
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
    parser.add_argument("--trees", nargs="*", default=list(trees.DEFAULT_TREES),
                        choices=list(trees.TREES))
    parser.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS),
                        choices=list(OPTIMIZERS))
    parser.add_argument("--rounds", type=int, default=20, help="timed steps of each variant")
    parser.add_argument("--compiles", type=int, default=3,
                        help="compiles of each variant, in turn; the median is reported")
    parser.add_argument("--sweep", type=int, nargs="*", default=list(trees.SWEEP_LEAVES),
                        metavar="LEAVES", help="leaf counts of the sweep's trees, each of "
                        f"{trees.SWEEP_SIZE:,} values, run with adam (none: no sweep)")
    parser.add_argument("--training", action=argparse.BooleanOptionalAction, default=True,
                        help="time a Flax NNX model's training step with each optimizer")
    parser.add_argument("--json", metavar="PATH", help="also write the rows there, as JSON")
    args = parser.parse_args(argv)
    device = jax.devices(args.device)[0]
    machine_gbps = bandwidth(device)
    heading = (f"{machine(device)}; bandwidth {machine_gbps:.1f} GB/s; "
               f"median of {args.rounds} steps and of {args.compiles} compiles")
    print(f"# {heading}", flush=True)
    rows: list[Row] = []

    def report(new: list[Row]) -> None:
        print(table(new).split("\n", 2)[2] if rows else table(new), flush=True)
        rows.extend(new)

    for tree in args.trees:
        for optimizer in args.optimizers:
            report(measure(tree, optimizer, args.rounds, device, machine_gbps,
                           compiles=args.compiles))
    for leaves in args.sweep:
        report(measure(f"sweep-{leaves}", "adam", args.rounds, device, machine_gbps,
                       trees.sweep_shapes(leaves), args.compiles))
    if args.training:
        for optimizer in args.optimizers:
            report(measure_training(optimizer, args.rounds, device))
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"machine": heading, "bandwidth_gbps": machine_gbps,
                       "command": " ".join(["python -m benchmarks", *(argv or sys.argv[1:])]),
                       "rows": [dataclasses.asdict(r) for r in rows]}, file, indent=1)
    return rows
