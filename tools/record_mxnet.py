"""Record reference trajectories and scheduler values from Apache MXNet 1.9.1.

Run with the interpreter of a virtual environment that has MXNet (it needs
``numpy<1.24``, so it cannot share one with JAX)::

    python3 -m venv /tmp/mxnet-env
    /tmp/mxnet-env/bin/pip install mxnet==1.9.1 "numpy<1.24"
    /tmp/mxnet-env/bin/python tools/record_mxnet.py

It writes ``tests/fixtures/mxnet_trajectories.json`` and
``tests/fixtures/mxnet_schedules.json``. Every number in them comes from MXNet;
the tests replay them through mxopt without MXNet installed.

Each trajectory case holds the optimizer name and the keyword arguments given
to ``mx.optimizer.create`` (a scheduler as ``{"type": ..., "kwargs": ...}``),
the effective per-parameter ``lr_mult``/``wd_mult`` MXNet used (by parameter
name), the initial weights, the gradient of every step and the weights after
every step. Updates go through ``Optimizer.update_multi_precision`` one index
at a time, as ``mx.optimizer.Updater`` does.
"""

import argparse
import json
import pathlib
import random

import mxnet as mx
import numpy as np

OPTIMIZERS = ("sgd", "nag", "adam")
STEPS = 12
SCHEDULERS = {
    "FactorScheduler": mx.lr_scheduler.FactorScheduler,
    "MultiFactorScheduler": mx.lr_scheduler.MultiFactorScheduler,
    "PolyScheduler": mx.lr_scheduler.PolyScheduler,
    "CosineScheduler": mx.lr_scheduler.CosineScheduler,
}
# Parameter names follow MXNet's conventions, so that the name-based defaults
# (no weight decay unless a name ends in _weight or _gamma) are exercised.
PARAM_SHAPES = {
    "dense0_weight": (4, 3),
    "dense0_bias": (3,),
    "bn0_gamma": (2, 2, 2),
    "bn0_beta": (5,),
}


def random_scheduler_spec(rng, *, max_base_lr=0.5):
    kind = rng.choice(sorted(SCHEDULERS))
    base_lr = rng.uniform(0.01, max_base_lr)
    kwargs = {"base_lr": base_lr}
    if rng.random() < 0.5:
        kwargs["warmup_steps"] = rng.randint(1, 8)
        kwargs["warmup_begin_lr"] = rng.uniform(0.0, base_lr)
        kwargs["warmup_mode"] = rng.choice(["linear", "constant"])
    if kind == "FactorScheduler":
        kwargs.update(step=rng.randint(1, 5), factor=rng.uniform(0.3, 1.0))
        if rng.random() < 0.5:
            kwargs["stop_factor_lr"] = base_lr * rng.uniform(0.05, 0.5)
    elif kind == "MultiFactorScheduler":
        steps = sorted(rng.sample(range(1, 40), rng.randint(1, 4)))
        kwargs.update(step=steps, factor=rng.uniform(0.3, 1.0))
    elif kind == "PolyScheduler":
        kwargs.update(max_update=rng.randint(kwargs.get("warmup_steps", 0) + 1, 40),
                      pwr=rng.choice([1, 2, 3, 0.5]),
                      final_lr=base_lr * rng.choice([0.0, rng.uniform(0.0, 0.5)]))
    else:
        kwargs.update(max_update=rng.randint(kwargs.get("warmup_steps", 0) + 1, 40),
                      final_lr=base_lr * rng.choice([0.0, rng.uniform(0.0, 0.5)]))
    return {"type": kind, "kwargs": kwargs}


def make_scheduler(spec):
    return SCHEDULERS[spec["type"]](**spec["kwargs"])


def random_case(rng, name, index):
    kwargs = {}
    if name in ("sgd", "nag"):
        kwargs["momentum"] = rng.choice([0.0, rng.uniform(0.0, 0.99)])
    else:
        kwargs.update(beta1=rng.choice([0.9, rng.uniform(0.0, 0.99)]),
                      beta2=rng.choice([0.999, 0.9999, rng.uniform(0.5, 0.9999)]),
                      epsilon=rng.choice([1e-8, 10 ** rng.uniform(-8, -2)]))
    if rng.random() < 0.7:
        kwargs["learning_rate"] = rng.uniform(0.001, 0.5 if name != "adam" else 0.05)
    if rng.random() < 0.5:
        kwargs["lr_scheduler"] = random_scheduler_spec(rng)
    if rng.random() < 0.6:
        kwargs["wd"] = rng.uniform(0.0, 0.1)
    if rng.random() < 0.5:
        kwargs["rescale_grad"] = rng.choice([1.0 / 32, rng.uniform(0.1, 2.0)])
    if rng.random() < 0.5:
        kwargs["clip_gradient"] = rng.uniform(0.05, 2.0)
    if rng.random() < 0.4:
        kwargs["begin_num_update"] = rng.randint(1, 500)
    dtype = "float32"
    if rng.random() < 0.3:
        dtype = "float16"
        kwargs["multi_precision"] = rng.random() < 0.8
    names = sorted(PARAM_SHAPES)
    lr_mult = {n: rng.uniform(0.1, 3.0) for n in names if rng.random() < 0.3}
    wd_mult = {n: rng.uniform(0.0, 3.0) for n in names if rng.random() < 0.3}
    grad_scale = 10 ** rng.uniform(-1.5, 1.0)
    return {"id": f"{name}-{index:02d}", "optimizer": name, "kwargs": kwargs,
            "set_lr_mult": lr_mult, "set_wd_mult": wd_mult, "dtype": dtype,
            "grad_scale": grad_scale, "seed": rng.randrange(2**31)}


def handpicked_cases():
    """MXNet's defaults, and combinations worth pinning down by name."""
    cases = []
    for name in OPTIMIZERS:
        cases.append({"id": f"{name}-defaults", "optimizer": name, "kwargs": {},
                      "set_lr_mult": {}, "set_wd_mult": {}, "dtype": "float32",
                      "grad_scale": 1.0, "seed": 1})
        cases.append({"id": f"{name}-scheduler-without-learning-rate", "optimizer": name,
                      "kwargs": {"lr_scheduler": {"type": "FactorScheduler", "kwargs": {
                          "step": 3, "factor": 0.5, "base_lr": 0.2, "warmup_steps": 2,
                          "warmup_begin_lr": 0.05}}},
                      "set_lr_mult": {}, "set_wd_mult": {}, "dtype": "float32",
                      "grad_scale": 1.0, "seed": 2})
        cases.append({"id": f"{name}-fp16-master", "optimizer": name,
                      "kwargs": {"learning_rate": 0.05, "multi_precision": True, "wd": 0.01,
                                 **({"momentum": 0.9} if name != "adam" else {})},
                      "set_lr_mult": {}, "set_wd_mult": {}, "dtype": "float16",
                      "grad_scale": 1.0, "seed": 3})
    return cases


def run_case(case):
    rng = np.random.RandomState(case["seed"])
    kwargs = dict(case["kwargs"])
    if "lr_scheduler" in kwargs:
        kwargs["lr_scheduler"] = make_scheduler(kwargs["lr_scheduler"])
    names = sorted(PARAM_SHAPES)
    idx2name = dict(enumerate(names))
    opt = mx.optimizer.create(case["optimizer"], param_idx2name=idx2name, **kwargs)
    opt.set_lr_mult(case["set_lr_mult"])
    opt.set_wd_mult(case["set_wd_mult"])
    dtype = np.dtype(case["dtype"])
    weights = [mx.nd.array(rng.uniform(-1, 1, PARAM_SHAPES[n]), dtype=dtype) for n in names]
    states = [opt.create_state_multi_precision(i, w) for i, w in enumerate(weights)]
    record = dict(case)
    record["lr_mult"] = {n: opt.lr_mult.get(n, 1.0) for n in names}
    record["wd_mult"] = {n: opt.wd_mult.get(n, 1.0) for n in names}
    record["initial"] = {n: w.asnumpy().tolist() for n, w in zip(names, weights)}
    record["grads"], record["weights"], record["learning_rates"] = [], [], []
    for _ in range(STEPS):
        grads = [mx.nd.array(rng.normal(0, case["grad_scale"], PARAM_SHAPES[n]), dtype=dtype)
                 for n in names]
        for i, (w, g) in enumerate(zip(weights, grads)):
            opt.update_multi_precision(i, w, g, states[i])
        record["learning_rates"].append(opt.learning_rate)
        record["grads"].append({n: g.asnumpy().tolist() for n, g in zip(names, grads)})
        record["weights"].append({n: w.asnumpy().tolist() for n, w in zip(names, weights)})
    return record


def schedule_cases(rng, count):
    cases = []
    for i in range(count):
        spec = random_scheduler_spec(rng, max_base_lr=1.0)
        if spec["type"] in ("PolyScheduler", "CosineScheduler"):
            spec["kwargs"]["max_update"] = rng.randint(spec["kwargs"].get("warmup_steps", 0) + 1,
                                                       1000)
        elif spec["type"] == "FactorScheduler":
            spec["kwargs"]["step"] = rng.randint(1, 200)
        else:
            spec["kwargs"]["step"] = sorted(rng.sample(range(1, 1000), rng.randint(1, 6)))
        # MXNet's schedulers keep state, so the order of the counts matters:
        # every case asks in increasing order, some from a late start and
        # with jumps, as a resumed run (begin_num_update) does. Poly and
        # Cosine hold whatever they last computed once past max_update, so
        # their counts visit max_update (see docs/mxnet_differences.md).
        start = rng.choice([0, 0, rng.randint(1, 300)])
        stride = rng.choice([1, 1, rng.randint(2, 9)])
        counts = set(range(start, 1001, stride))
        if spec["type"] in ("PolyScheduler", "CosineScheduler"):
            counts.add(spec["kwargs"]["max_update"])
        counts = sorted(counts)
        sched = make_scheduler(spec)
        cases.append({"id": f"schedule-{i:02d}", "scheduler": spec, "counts": counts,
                      "values": [sched(c) for c in counts]})
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = pathlib.Path(__file__).resolve().parent.parent
    parser.add_argument("--out", type=pathlib.Path, default=root / "tests" / "fixtures")
    parser.add_argument("--per-optimizer", type=int, default=14)
    parser.add_argument("--seed", type=int, default=20261122)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    cases = handpicked_cases()
    for name in OPTIMIZERS:
        cases += [random_case(rng, name, i) for i in range(args.per_optimizer)]
    meta = {"mxnet_version": mx.__version__, "numpy_version": np.__version__,
            "recorded_by": "tools/record_mxnet.py", "seed": args.seed}
    args.out.mkdir(parents=True, exist_ok=True)
    trajectories = {"meta": meta, "cases": [run_case(c) for c in cases]}
    (args.out / "mxnet_trajectories.json").write_text(json.dumps(trajectories))
    schedules = {"meta": meta, "cases": schedule_cases(rng, 40)}
    (args.out / "mxnet_schedules.json").write_text(json.dumps(schedules))
    print(f"recorded {len(trajectories['cases'])} trajectories and "
          f"{len(schedules['cases'])} schedules into {args.out}")


if __name__ == "__main__":
    main()
