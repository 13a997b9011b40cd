"""Record GluonCV 0.10.5's learning-rate schedulers, alone and beside MXNet's optimizers.

Run with the interpreter of MXNet's virtual environment (see record_mxnet.py), with
GluonCV installed beside MXNet without its dependencies::

    /tmp/mxnet-env/bin/pip install --no-deps gluoncv==0.10.5.post0
    /tmp/mxnet-env/bin/python tools/record_gluoncv.py

GluonCV's package ``__init__`` imports its whole data stack; its
``utils/lr_scheduler.py`` needs only MXNet, so it is loaded by file path.
This writes ``tests/fixtures/mxnet_gluoncv_schedules.json``: for random
configurations of every mode and of ``LRSequential`` chains (warmup then
decay, as GluonCV's recipes build them), each scheduler's value at every
count from 0 to past its end and at a few far counts, called in increasing
order as an optimizer calls it; and, for some of them given to
``mx.optimizer.create`` with and without a ``learning_rate``, what MXNet
printed and the optimizer's ``learning_rate`` at those counts. Where GluonCV
raises instead, the case records ``"error"``.
"""

import contextlib
import functools
import io
import json
import random
import sys
import types

import mxnet as mx
import recording

MODES = ["constant", "step", "linear", "poly", "cosine"]


@functools.cache
def gluoncv_module():
    """``gluoncv.utils.lr_scheduler``, loaded once, with stand-ins for the packages above it, whose
    ``__init__`` would import GluonCV's data stack (a pickle of a scheduler imports them)."""
    module = recording.module_file("gluoncv", "utils/lr_scheduler.py")
    for package in ("gluoncv", "gluoncv.utils"):
        sys.modules.setdefault(package, types.ModuleType(package))
    return module


def random_scheduler(rng, mode=None, *, base_lr=None, target_lr=None):
    """Keyword arguments of one GluonCV LRScheduler."""
    mode = mode or rng.choice(MODES)
    kwargs = {"mode": mode, "base_lr": rng.uniform(0.0, 0.5) if base_lr is None else base_lr}
    if rng.random() < 0.7 or target_lr is not None:
        kwargs["target_lr"] = rng.uniform(0.0, 0.1) if target_lr is None else target_lr
    if rng.random() < 0.5:
        kwargs["nepochs"], kwargs["iters_per_epoch"] = rng.randint(1, 6), rng.randint(1, 5)
        if mode == "step":
            kwargs["step_epoch"] = sorted(rng.sample(range(1, 8), rng.randint(1, 3)))
    else:
        kwargs["niters"] = rng.choice([0, 2, rng.randint(2, 30)])
        if mode == "step":
            kwargs["step_iter"] = sorted(rng.sample(range(0, 35), rng.randint(1, 4)))
    if rng.random() < 0.3:
        kwargs["offset"] = rng.randint(0, 10)
    if mode == "poly":
        kwargs["power"] = rng.choice([2, 1, 0.5, rng.uniform(0.1, 4.0)])
    if mode == "step" and rng.random() < 0.7:
        kwargs["step_factor"] = rng.uniform(0.05, 0.9)
    return kwargs


def recipe(rng):
    """A model-zoo schedule: a linear warmup from 0 (maybe of 0 epochs), then a decay."""
    lr, per_epoch = rng.uniform(0.01, 0.5), rng.randint(1, 4)
    warmup = {"mode": "linear", "base_lr": 0.0, "target_lr": lr,
              "nepochs": rng.choice([0, rng.randint(1, 3)]), "iters_per_epoch": per_epoch}
    decay = {"mode": rng.choice(["cosine", "step", "poly", "linear"]), "base_lr": lr,
             "target_lr": 0.0, "nepochs": rng.randint(2, 6), "iters_per_epoch": per_epoch}
    if decay["mode"] == "step":
        decay["step_epoch"] = sorted(rng.sample(range(1, 6), rng.randint(1, 2)))
    parts = [warmup, decay]
    if rng.random() < 0.3:
        parts.append(random_scheduler(rng))
    return parts


def counts_of(total):
    return list(range(0, total + 6)) + [total + 50, 10**6]


def build(gcv, case):
    """A case's scheduler, made anew (MXNet's optimizers change the ones they are given)."""
    if "sequential" in case:
        return gcv.LRSequential([gcv.LRScheduler(**p) for p in case["sequential"]])
    return gcv.LRScheduler(**case["scheduler"])


def values(gcv, case):
    """The scheduler's value at each count, in order, or GluonCV's error."""
    try:
        scheduler = build(gcv, case)
        return {"values": [float(scheduler(n)) for n in case["counts"]]}
    except Exception as error:  # noqa: BLE001 - recorded for the tests to compare
        return {"error": f"{type(error).__name__}: {error}"}


def main():
    args = recording.arguments(__doc__, recording.FIXTURES / "mxnet_gluoncv_schedules.json",
                               ("--seed", {"type": int, "default": 20261203}),
                               ("--cases", {"type": int, "default": 60}))
    gcv = gluoncv_module()
    rng = random.Random(args.seed)
    cases = []
    for i in range(args.cases):
        mode = MODES[i % len(MODES)] if i < 4 * len(MODES) else None
        kwargs = random_scheduler(rng, mode)
        total = max(kwargs.get("niters", 0), kwargs.get("nepochs", 0) *
                    kwargs.get("iters_per_epoch", 0)) + kwargs.get("offset", 0)
        case = {"id": f"scheduler-{i:02d}", "scheduler": kwargs, "counts": counts_of(total)}
        cases.append({**case, **values(gcv, case)})
    for i in range(args.cases // 2):
        parts = recipe(rng)
        total = sum(max(p.get("niters", 0), p.get("nepochs", 0) * p.get("iters_per_epoch", 0))
                    for p in parts)
        case = {"id": f"sequential-{i:02d}", "sequential": parts, "counts": counts_of(total)}
        cases.append({**case, **values(gcv, case)})
    # Beside an optimizer: MXNet's learning_rate override, and its warning.
    overrides = []
    for case in cases[::3]:
        if "error" in case:
            continue
        for name in ("sgd", "nag", "adam"):
            learning_rate = rng.choice([None, rng.uniform(0.001, 0.5)])
            kwargs = {} if learning_rate is None else {"learning_rate": learning_rate}
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                optimizer = mx.optimizer.create(name, lr_scheduler=build(gcv, case), **kwargs)
            rates = []
            for n in case["counts"]:
                optimizer.num_update = n
                rates.append(float(optimizer.learning_rate))
            overrides.append({"id": f"{case['id']}-{name}", "case": case["id"],
                              "optimizer": name, "learning_rate": learning_rate,
                              "printed": printed.getvalue(), "values": rates})
    meta = {**recording.meta(__file__, args.seed), "gluoncv_version": "0.10.5.post0"}
    args.out.write_text(json.dumps({"meta": meta, "cases": cases, "overrides": overrides}))
    errors = sum("error" in c for c in cases)
    print(f"{len(cases)} schedules ({errors} where GluonCV raises), "
          f"{len(overrides)} beside an optimizer")


if __name__ == "__main__":
    main()
