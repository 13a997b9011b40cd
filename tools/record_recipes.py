"""Record GluonCV's and GluonNLP's training recipes as MXNet 1.9.1 runs them, step by step.

Run with the interpreter of MXNet's virtual environment, with GluonCV 0.10.5
and GluonNLP 0.10.0 installed beside MXNet (see record_gluoncv.py and
record_mxnet.py)::

    /tmp/mxnet-env/bin/python tools/record_recipes.py

It writes ``tests/fixtures/mxnet_recipes.json``; tests/test_recipes.py
replays it through mxopt without MXNet. Each case is a short run, on four
small parameters with Gluon's names, of the optimizer a recipe builds,
driven as ``gluon.Trainer`` drives it: ``mx.optimizer.get_updater(opt)``
called at every step with the lists of every index, gradient and weight.

* ``gluoncv``: ``nag`` or ``sgd``, momentum near 0.9, weight decay, and as
  ``lr_scheduler`` an ``LRSequential`` of a linear warmup from 0 then a
  cosine, step, poly or linear decay (``record_gluoncv.recipe``), with or
  without a ``learning_rate`` (which MXNet gives the sequence, and the
  sequence never reads).
* ``gluonnlp``: ``bertadam`` (GluonNLP's BERTAdam) without a schedule; with
  an ``LRSequential`` of a linear warmup and a linear decay; with MXNet's
  ``PolyScheduler`` after a warmup; or, as GluonNLP's BERT scripts do, with
  none but ``opt.set_learning_rate(rate)`` of a linear warmup then a linear
  decay before every step (the case's ``set_rates``).

Weights are float32, or float16 with ``multi_precision=True``; some cases
give ``param_idx2name`` (``"named"``), which turns on MXNet's default of no
weight decay for names ending in neither ``_weight`` nor ``_gamma``; some
give ``rescale_grad = 1 / batch_size`` (their gradients are sums over a
batch) and ``clip_gradient``. A case holds its keyword arguments (a
scheduler as ``{"type": ..., "kwargs": ...}``), the parameter names in
index order, the effective ``lr_mult``/``wd_mult`` by name, the initial
weights and, for every step, the gradients, the weights after it and
``optimizer.learning_rate`` after it. Every number is written as the
shortest decimal that reads back to it in its dtype.
"""

import collections
import contextlib
import io
import json
import random

import mxnet as mx
import numpy as np
import record_gluoncv
import record_mxnet
import recording

CASES_PER_RECIPE = 12
STEPS = (10, 14)  # each run's number of steps is drawn from this range
# A small net's parameters, in the order gluon.Trainer indexes them.
PARAMS = {"dense0_weight": (3, 4), "dense0_bias": (3,), "batchnorm0_gamma": (4,),
          "batchnorm0_beta": (4,)}
BERT_SCHEDULES = ("none", "LRSequential", "PolyScheduler", "set_learning_rate")


def gluoncv_schedule(rng):
    """``record_gluoncv.recipe``'s members, drawn again while one spans 1 iteration: a mode
    that divides by ``niters - 1`` fails there in GluonCV, and mxopt refuses it when built."""
    while True:
        parts = record_gluoncv.recipe(rng)
        spans = [max(p.get("niters", 0), p.get("nepochs", 0) * p.get("iters_per_epoch", 0))
                 for p in parts]
        if 1 not in spans:
            return {"type": "LRSequential", "kwargs": {"schedulers": parts}}


def gluoncv_kwargs(rng):
    """A model-zoo recipe's arguments to ``nag`` or ``sgd``."""
    kwargs = {"momentum": rng.uniform(0.85, 0.95), "wd": 10 ** rng.uniform(-3.3, -1.3),
              "lr_scheduler": gluoncv_schedule(rng)}
    if rng.random() < 0.5:
        kwargs["learning_rate"] = rng.uniform(0.01, 0.5)
    return kwargs


def bert_rates(rng, steps):
    """GluonNLP's BERT scripts' rate at step numbers ``s = 0, 1, ...``: ``lr * s / warmup``
    while ``s < warmup``, then ``lr - lr * (s - warmup) / (total - warmup)``."""
    lr, warmup, total = rng.uniform(1e-3, 2e-2), rng.randint(2, 5), steps + rng.randint(0, 6)
    return [lr * s / warmup if s < warmup else lr - lr * (s - warmup) / (total - warmup)
            for s in range(steps)]


def gluonnlp_kwargs(rng, schedule, steps):
    """``bertadam``'s arguments under one of :data:`BERT_SCHEDULES`, and the rates to set
    before each step (or None)."""
    kwargs, lr = {"wd": rng.uniform(0.0, 0.02)}, rng.uniform(1e-3, 2e-2)
    if rng.random() < 0.5:
        kwargs.update(beta2=rng.choice([0.98, 0.999]), epsilon=rng.choice([1e-6, 1e-8]))
    if schedule == "none" and rng.random() < 0.7:
        kwargs["learning_rate"] = lr
    elif schedule == "LRSequential":
        warmup = rng.randint(2, 5)
        kwargs["lr_scheduler"] = {"type": "LRSequential", "kwargs": {"schedulers": [
            {"mode": "linear", "base_lr": 0.0, "target_lr": lr, "niters": warmup},
            {"mode": "linear", "base_lr": lr, "target_lr": 0.0,
             "niters": steps - warmup + rng.randint(0, 6)}]}}
    elif schedule == "PolyScheduler":
        warmup = rng.randint(1, 4)
        kwargs["lr_scheduler"] = {"type": "PolyScheduler", "kwargs": {
            "base_lr": lr, "max_update": rng.randint(steps - 3, steps + 6),
            "pwr": rng.choice([1, 2, 0.5]), "final_lr": rng.choice([0.0, lr / 10]),
            "warmup_steps": warmup, "warmup_begin_lr": 0.0}}
    if schedule != "none" and rng.random() < 0.3:
        kwargs["learning_rate"] = lr  # a default BERTAdam's 0.001 otherwise
    return kwargs, bert_rates(rng, steps) if schedule == "set_learning_rate" else None


def random_case(rng, recipe, index):
    """One run's arguments, and how to draw its weights and gradients (``run``'s ``draws``)."""
    steps = rng.randint(*STEPS)
    case = {"id": f"{recipe}-{index:02d}", "recipe": recipe}
    if recipe == "gluoncv":
        case["optimizer"] = ("nag", "sgd")[index % 2]
        kwargs = gluoncv_kwargs(rng)
    else:
        case["optimizer"] = "bertadam"
        kwargs, rates = gluonnlp_kwargs(rng, BERT_SCHEDULES[index % len(BERT_SCHEDULES)],
                                        steps)
        if rates is not None:
            case["set_rates"] = rates
    grad_scale = 10 ** rng.uniform(-1.0, 0.5)
    if rng.random() < 0.5:
        batch_size = rng.choice([8, 32, 128])
        kwargs["rescale_grad"] = 1.0 / batch_size
        grad_scale *= batch_size
    if rng.random() < 0.4:
        kwargs["clip_gradient"] = rng.uniform(0.1, 2.0)
    case["dtype"] = "float16" if rng.random() < 0.35 else "float32"
    if case["dtype"] == "float16":
        kwargs["multi_precision"] = True
    case.update(kwargs=kwargs, named=rng.random() < 0.6)
    return case, {"steps": steps, "grad_scale": grad_scale, "seed": rng.randrange(2**31)}


def make_scheduler(spec):
    """GluonCV's ``LRSequential`` or one of MXNet's schedulers, from a case's spec."""
    if spec["type"] == "LRSequential":
        return record_gluoncv.build(record_gluoncv.gluoncv_module(),
                                    {"sequential": spec["kwargs"]["schedulers"]})
    return record_mxnet.make_scheduler(spec)


def shortest(array):
    """An NDArray's values as nested lists of the shortest decimals that read back to them
    in its dtype."""
    values = array.asnumpy()
    decimals = np.reshape([float(str(v)) for v in values.ravel()], values.shape)
    np.testing.assert_array_equal(decimals.astype(values.dtype), values)
    return decimals.tolist()


def by_name(names, arrays):
    return {n: shortest(a) for n, a in zip(names, arrays)}


def run(case, draws):
    """The case with what MXNet did along its run of ``draws["steps"]`` steps, from weights
    uniform in [-1, 1] and gradients of deviation ``draws["grad_scale"]``."""
    rng = np.random.RandomState(draws["seed"])
    names, dtype = list(PARAMS), np.dtype(case["dtype"])
    kwargs = dict(case["kwargs"])
    if "lr_scheduler" in kwargs:
        kwargs["lr_scheduler"] = make_scheduler(kwargs["lr_scheduler"])
    with contextlib.redirect_stdout(io.StringIO()):  # MXNet prints its learning_rate override
        opt = mx.optimizer.create(case["optimizer"], **kwargs, param_idx2name=(
            dict(enumerate(names)) if case["named"] else None))
    updater = mx.optimizer.get_updater(opt)
    weights = [mx.nd.array(rng.uniform(-1, 1, PARAMS[n]), dtype=dtype) for n in names]
    record = {**case, "names": names, "lr_mult": {n: opt.lr_mult.get(n, 1.0) for n in names},
              "wd_mult": {n: opt.wd_mult.get(n, 1.0) for n in names},
              "initial": by_name(names, weights), "grads": [], "weights": [],
              "learning_rates": []}
    for step in range(draws["steps"]):
        grads = [mx.nd.array(rng.normal(0, draws["grad_scale"], PARAMS[n]), dtype=dtype)
                 for n in names]
        record["grads"].append(by_name(names, grads))
        if "set_rates" in case:
            opt.set_learning_rate(case["set_rates"][step])
        updater(list(range(len(names))), grads, weights)
        record["weights"].append(by_name(names, weights))
        record["learning_rates"].append(float(opt.learning_rate))
    return record


def main():
    args = recording.arguments(__doc__, recording.FIXTURES / "mxnet_recipes.json",
                               ("--seed", {"type": int, "default": 20261210}))
    record_mxnet.register_bertadam()
    rng = random.Random(args.seed)
    cases = [run(*random_case(rng, recipe, i)) for recipe in ("gluoncv", "gluonnlp")
             for i in range(CASES_PER_RECIPE)]
    meta = {**recording.meta(__file__, args.seed), "gluoncv_version": "0.10.5.post0",
            "gluonnlp_version": "0.10.0"}
    text = json.dumps({"meta": meta, "cases": cases}, separators=(",", ":"))
    args.out.write_text(text)
    kinds = collections.Counter(
        f"{c['optimizer']} " + c["kwargs"].get("lr_scheduler", {}).get(
            "type", "set_learning_rate" if "set_rates" in c else "without a schedule")
        for c in cases)
    print(f"{len(cases)} recipes ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}); "
          f"{sum(c['dtype'] == 'float16' for c in cases)} float16 with master weights, "
          f"{sum(c['named'] for c in cases)} with param_idx2name; {len(text) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
