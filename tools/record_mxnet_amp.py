"""Record MXNet 1.9.1's AMP dynamic loss scaling with a Gluon Trainer.

Run with the interpreter of a virtual environment that has MXNet (see
tools/record_mxnet.py)::

    /tmp/mxnet-env/bin/python tools/record_mxnet_amp.py

It writes ``tests/fixtures/mxnet_amp.json``. Every number in it comes from
MXNet; the tests replay it through mxopt without MXNet.

Each case builds a ``gluon.Trainer`` (the optimizer by name, with the
case's kwargs) over a few Parameters, calls ``amp.init_trainer`` and sets
the LossScaler's initial scale, ``scale_seq_len`` and cap (recorded as
``"scaler"``, defaults included). Each step runs ``amp.scale_loss`` (so that
``trainer._scale`` is 1 / loss scale, as in a training loop), sets every
gradient to a random "scaled gradient" (a normal draw times that loss
scale, cast to the parameter dtype), and calls ``trainer.step``, whose
``_update`` asks ``LossScaler.has_overflow`` and skips the whole update on
overflow. On chosen steps one element is set to inf, -inf or NaN, or to a
value that overflows float16 only once multiplied by the loss scale
(``"big"``). A step records the loss scale ``scale_loss`` used, the
gradients, whether ``has_overflow`` skipped it, the weights after it, the
scaler's ``_loss_scale``, ``_next_loss_scale`` and ``_unskipped`` after
it, and the optimizer's ``num_update``.

The gradients are marked fresh as ``backward`` would mark them (with
``ignore_stale_grad=True`` instead, ``_update`` would silently update
nothing). ``amp.init()`` must come before ``init_trainer``; it wraps about
200 ``mx.nd`` operators, but the optimizers' kernels are bound in
``mxnet.optimizer`` at import and the wrappers cast nothing that this path
passes them on CPU, so the fixture is bit-identical to one recorded with
``amp.init`` reduced to setting its flags.
"""

import json
import random

import mxnet as mx
import numpy as np
import recording
from mxnet import gluon, nd
from mxnet.contrib import amp

SEED = 20261215
STEPS, BATCH_SIZE = 12, 4
SHAPES = {"dense0_weight": (4, 3), "dense0_bias": (3,), "bn0_gamma": (5,)}
BIG = 1.5  # an unscaled gradient that overflows float16 once the loss scale is over 43669
DEFAULT_SCALER = {"init_scale": 2.0**16, "scale_seq_len": 2000, "max_loss_scale": 2.0**24}
CAP = {"init_scale": 2.0**22, "scale_seq_len": 3, "max_loss_scale": 2.0**24}
GROWTH = {"init_scale": 2.0**10, "scale_seq_len": 2, "max_loss_scale": 2.0**12}
SGD = {"learning_rate": 0.1, "momentum": 0.9, "wd": 1e-4,
       "lr_scheduler": {"type": "FactorScheduler",
                        "kwargs": {"step": 2, "factor": 0.5, "base_lr": 0.1}}}
ADAM = {"learning_rate": 0.01, "wd": 1e-4}
LAMB = {"learning_rate": 0.01, "wd": 1e-3}
RMSPROP = {"learning_rate": 0.01, "gamma1": 0.9, "centered": True}
MP = {"multi_precision": True}
# id, optimizer, kwargs, dtype, scaler, std of the unscaled gradients, {step: event}
CASES = [
    ("sgd-float32-cap", "sgd", SGD, "float32", CAP, 1e-3, {9: "inf", 10: "-inf", 11: "nan"}),
    ("sgd-float16-mp", "sgd", {**SGD, **MP}, "float16", DEFAULT_SCALER, 2e-2,
     {4: "big", 9: "inf", 10: "big"}),
    # no events: its float16 gradients overflow by themselves at a loss scale of 2**16
    ("sgd-float16-pure", "sgd", SGD, "float16", {**DEFAULT_SCALER, "scale_seq_len": 3}, 0.5, {}),
    ("adam-float32", "adam", ADAM, "float32", DEFAULT_SCALER, 1e-3,
     {2: "big", 3: "nan", 4: "nan", 7: "inf"}),
    ("adam-float16-mp", "adam", {**ADAM, **MP}, "float16", DEFAULT_SCALER, 1e-3,
     {2: "big", 3: "big", 4: "big", 8: "-inf"}),
    ("lamb-float32-growth", "lamb", LAMB, "float32", GROWTH, 1e-2, {5: "inf"}),
    ("lamb-float16-mp-growth", "lamb", {**LAMB, **MP}, "float16",
     {**GROWTH, "scale_seq_len": 3, "max_loss_scale": 2.0**24}, 1e-2, {6: "nan", 7: "nan"}),
    ("rmsprop-float16-mp", "rmsprop", {**RMSPROP, **MP}, "float16", DEFAULT_SCALER, 1e-3,
     {0: "inf", 5: "big"}),
]


def optimizer_kwargs(kwargs):
    kwargs = dict(kwargs)
    if "lr_scheduler" in kwargs:
        spec = kwargs["lr_scheduler"]
        kwargs["lr_scheduler"] = getattr(mx.lr_scheduler, spec["type"])(**spec["kwargs"])
    return kwargs


def draw_grads(rng, names, std, scale, dtype, event):
    """Scaled gradients: normal draws times the loss scale, cast to ``dtype``."""
    grads = {n: rng.normal(0, std, SHAPES[n]) for n in names}
    if event is not None:
        name = names[rng.randint(len(names))]
        flat = grads[name].reshape(-1)
        flat[rng.randint(flat.size)] = {"inf": np.inf, "-inf": -np.inf, "nan": np.nan,
                                        "big": BIG * rng.choice([-1, 1])}[event]
    with np.errstate(over="ignore", invalid="ignore"):
        return {n: (g * scale).astype(dtype) for n, g in grads.items()}


def run_case(seed, case_id, optimizer, kwargs, dtype, scaler_spec, std, events):
    rng = np.random.RandomState(seed)
    names = sorted(SHAPES)
    params = []
    for n in names:
        p = gluon.Parameter(n, shape=SHAPES[n], dtype=dtype)
        p.initialize(ctx=mx.cpu())
        p.set_data(nd.array(rng.uniform(-1, 1, SHAPES[n]), dtype=dtype))
        params.append(p)
    trainer = gluon.Trainer(params, optimizer, optimizer_kwargs(kwargs))
    amp.init_trainer(trainer)
    scaler = trainer._amp_loss_scaler
    scaler._loss_scale = scaler._next_loss_scale = scaler_spec["init_scale"]
    scaler._scale_seq_len = scaler_spec["scale_seq_len"]
    scaler._max_loss_scale = scaler_spec["max_loss_scale"]
    overflows = []
    has_overflow = scaler.has_overflow

    def observed_has_overflow(params):
        overflows.append(has_overflow(params))
        return overflows[-1]

    scaler.has_overflow = observed_has_overflow
    record = {"id": case_id, "optimizer": optimizer, "kwargs": kwargs, "dtype": dtype,
              "batch_size": BATCH_SIZE, "scaler": scaler_spec,
              "initial": {p.name: p.data().asnumpy().tolist() for p in params}, "steps": []}
    for step in range(STEPS):
        with amp.scale_loss(nd.ones((1,)), trainer):
            pass
        loss_scale = scaler.loss_scale
        grads = draw_grads(rng, names, std, loss_scale, dtype, events.get(step))
        for p in params:
            p.grad()[:] = nd.array(grads[p.name], dtype=dtype)
            p.data()._fresh_grad = True  # as backward leaves it
        trainer.step(BATCH_SIZE)
        record["steps"].append({
            "loss_scale": loss_scale, "grads": {n: g.tolist() for n, g in grads.items()},
            "skipped": bool(overflows[-1]),
            "weights": {p.name: p.data().asnumpy().tolist() for p in params},
            "loss_scale_after": scaler._loss_scale, "next_loss_scale": scaler._next_loss_scale,
            "unskipped": scaler._unskipped, "num_update": trainer._optimizer.num_update})
    assert len(overflows) == STEPS
    return record


def main():
    args = recording.arguments(__doc__, recording.FIXTURES / "mxnet_amp.json",
                               ("--seed", {"type": int, "default": SEED}))
    amp.init()
    rng = random.Random(args.seed)
    cases = [run_case(rng.randrange(2**31), *case) for case in CASES]
    args.out.write_text(json.dumps({"mxnet_version": mx.__version__, "cases": cases}))
    for case in cases:
        skipped = sum(s["skipped"] for s in case["steps"])
        scales = sorted({s["loss_scale"] for s in case["steps"]})
        print(f"{case['id']}: {skipped}/{STEPS} skipped, loss scales {scales}")


if __name__ == "__main__":
    main()
