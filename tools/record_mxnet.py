"""Record reference trajectories and scheduler values from Apache MXNet 1.9.1.

Run with the interpreter of a virtual environment that has MXNet (it needs
``numpy<1.24``, so it cannot share one with JAX)::

    python3 -m venv /tmp/mxnet-env
    /tmp/mxnet-env/bin/pip install mxnet==1.9.1 "numpy<1.24"
    /tmp/mxnet-env/bin/python tools/record_mxnet.py [--optimizers adam sgd ...]

It writes ``tests/fixtures/trajectories/<optimizer>.json`` for each optimizer
(by default every one in MXNet's registry, and GluonNLP 0.10.0's ``bertadam``,
installed beside MXNet by ``pip install --no-deps gluonnlp==0.10.0 packaging``),
``tests/fixtures/mxnet_schedules.json`` and ``tests/fixtures/mxnet_registry.json``
(each registered optimizer's constructor defaults). Every number in them comes
from MXNet; the tests replay them through mxopt without MXNet installed. Each
optimizer's cases come from their own random stream, so re-recording one leaves
the others' files alone.

Each trajectory case holds the optimizer name and the keyword arguments given
to ``mx.optimizer.create`` (a scheduler as ``{"type": ..., "kwargs": ...}``),
the effective per-parameter ``lr_mult``/``wd_mult`` MXNet used (by parameter
name), the initial weights, the gradient of every step and the weights after
every step. Updates go through ``Optimizer.update_multi_precision`` one index
at a time (``mx.optimizer.Updater`` groups indices for the optimizers with
aggregated kernels; docs/mxnet_differences.md says where that matters).
Where MXNet raises instead, the case records ``"mxnet_error"`` and no weights.

SGLD's Langevin noise is replaced by zeros while recording, so its file holds
MXNet's deterministic part of the update.
"""

import inspect
import json
import random

import mxnet as mx
import numpy as np
import recording

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


def _either(rng, default, draw, p_default=0.3):
    return default if rng.random() < p_default else draw()


def _momentum(rng):
    return rng.choice([0.0, rng.uniform(0.0, 0.99)])


def _betas(rng, beta1=0.9, beta2=0.999):
    return {"beta1": _either(rng, beta1, lambda: rng.uniform(0.0, 0.99)),
            "beta2": _either(rng, beta2, lambda: rng.choice([0.9999, rng.uniform(0.5, 0.9999)]))}


def _epsilon(rng, default, name="epsilon"):
    return {name: _either(rng, default, lambda: 10 ** rng.uniform(-8, -2))}


# Each optimizer's own arguments, drawn at random. Cases MXNet 1.9.1 cannot
# run (signum with wd_lh but no momentum, dcasgd with momentum) are drawn too,
# rarely: they record MXNet's error, which the tests check is still there.
SPACES = {
    "sgd": lambda rng: {"momentum": _momentum(rng)},
    "ccsgd": lambda rng: {"momentum": _momentum(rng)},
    "nag": lambda rng: {"momentum": _momentum(rng)},
    "adam": lambda rng: {**_betas(rng), **_epsilon(rng, 1e-8)},
    "signum": lambda rng: {"momentum": rng.choice([0.9, 0.0, rng.uniform(0.0, 0.99)]),
                           "wd_lh": rng.choice([0.0, rng.uniform(0.0, 0.1)])},
    "ftml": lambda rng: {**_betas(rng, beta1=0.6), **_epsilon(rng, 1e-8)},
    # LARS's momentum correction acts where a schedule changes the rate, so
    # its cases draw momentum and a scheduler more often than the others'.
    "lars": lambda rng: {"momentum": rng.choice([0.9, _momentum(rng)]),
                         "eta": _either(rng, 0.001, lambda: rng.uniform(1e-4, 0.1)),
                         "eps": rng.choice([0, rng.uniform(0.0, 1e-3)]),
                         "momentum_correction": rng.random() < 0.7,
                         **({"lr_scheduler": random_scheduler_spec(rng, max_base_lr=0.5)}
                            if rng.random() < 0.5 else {})},
    "lbsgd": lambda rng: {"momentum": _momentum(rng),
                          "warmup_strategy": rng.choice(["linear", "power2", "sqrt", "lars"]),
                          "warmup_epochs": rng.randint(0, 3),
                          "batch_scale": rng.choice([1, 1, 2, 3]),
                          "updates_per_epoch": rng.randint(1, 5),
                          "begin_epoch": rng.choice([0, rng.randint(0, 2)]),
                          "num_epochs": rng.randint(3, 60)},
    "lamb": lambda rng: {**_betas(rng), **_epsilon(rng, 1e-6),
                         "lower_bound": rng.choice([None, rng.uniform(1e-3, 0.5)]),
                         "upper_bound": rng.choice([None, rng.uniform(1.0, 10.0)]),
                         "bias_correction": rng.random() < 0.7},
    "dcasgd": lambda rng: {"momentum": rng.choice([0.0] * 6 + [rng.uniform(0.0, 0.99)]),
                           "lamda": _either(rng, 0.04, lambda: rng.uniform(0.0, 1.0))},
    "sgld": lambda rng: {},
    "adagrad": lambda rng: _epsilon(rng, 1e-7, name="eps"),
    "rmsprop": lambda rng: {"gamma1": _either(rng, 0.9, lambda: rng.uniform(0.0, 0.99)),
                            "gamma2": _either(rng, 0.9, lambda: rng.uniform(0.0, 0.99)),
                            **_epsilon(rng, 1e-8),
                            "centered": rng.random() < 0.5,
                            "clip_weights": rng.choice([None, rng.uniform(0.1, 2.0)])},
    "adadelta": lambda rng: {"rho": _either(rng, 0.9, lambda: rng.uniform(0.5, 0.99)),
                             **_epsilon(rng, 1e-5)},
    "ftrl": lambda rng: {"lamda1": _either(rng, 0.01, lambda: rng.uniform(0.0, 0.1)),
                         "beta": _either(rng, 1, lambda: rng.uniform(0.0, 2.0))},
    "adamax": lambda rng: _betas(rng),
    "bertadam": lambda rng: {**_betas(rng), **_epsilon(rng, 1e-6)},
    # MXNet multiplies Nadam's one momentum schedule once per parameter, so
    # mxopt's per-update schedule differs for beta1 > 0; beta1 = 0 has no
    # schedule and is drawn often enough that some cases compare.
    "nadam": lambda rng: {**_betas(rng), **_epsilon(rng, 1e-8),
                          "schedule_decay": _either(rng, 0.004, lambda: rng.uniform(0.0, 0.01)),
                          **({"beta1": 0.0} if rng.random() < 0.4 else {})},
    "groupadagrad": lambda rng: _epsilon(rng, 1e-5, name="eps"),
    "test": lambda rng: {},
}
# The learning rates drawn for each optimizer: up to 0.5, smaller for the
# adaptive ones, whose steps do not shrink with the gradient.
MAX_LEARNING_RATE = {"sgd": 0.5, "ccsgd": 0.5, "nag": 0.5, "lars": 0.5, "lbsgd": 0.5,
                     "dcasgd": 0.5, "sgld": 0.2, "adagrad": 0.5, "adadelta": 2.0, "ftrl": 0.5,
                     "groupadagrad": 0.5}
# GroupAdaGrad keeps one history value per row, so it takes 2-D weights only.
SHAPES = {"groupadagrad": {"dense0_weight": (4, 3), "dense1_weight": (3, 5),
                           "embed0_weight": (6, 2)}}
# Optimizers whose float16 case runs with momentum 0.9.
WITH_MOMENTUM = {"sgd", "ccsgd", "nag", "signum", "lars", "lbsgd"}
# Documented arguments MXNet 1.9.1 fails on: signum's wd_lh is passed to a
# kernel that lacks it when momentum is 0, and dcasgd tests an NDArray's truth.
DOCUMENTED_BUT_RAISES = {"signum": {"momentum": 0.0, "wd_lh": 0.01, "learning_rate": 0.01},
                         "dcasgd": {"momentum": 0.9, "learning_rate": 0.1}}
# Combinations the random draws may miss, pinned by name: (id suffix, dtype, kwargs).
# LBSGD's 'lars' multiplier under multi_precision takes the float32 masters' norms.
PINNED = {"lbsgd": [("fp16-master-lars", "float16", {
    "learning_rate": 0.1, "momentum": 0.9, "wd": 0.01, "warmup_strategy": "lars",
    "batch_scale": 2, "multi_precision": True})],
    # A small gamma1 makes the centered n - m^2 cancel: every rounding of the
    # kernel's shows in the weights within a few steps.
    "rmsprop": [("centered-cancelling", "float32", {
        "gamma1": 0.0654, "gamma2": 0.9, "centered": True, "learning_rate": 0.0244,
        "wd": 0.093, "rescale_grad": 1 / 32, "clip_gradient": 1.124}),
        ("centered-cancelling-clip-weights", "float32", {
            "gamma1": 0.2, "gamma2": 0.92, "centered": True, "learning_rate": 0.033,
            "wd": 0.089, "rescale_grad": 1 / 32, "clip_gradient": 0.155,
            "clip_weights": 1.67, "epsilon": 1.085e-7})]}
# Weight decay MXNet rejects (GroupAdaGrad asserts wd == 0).
NO_WEIGHT_DECAY = {"groupadagrad", "test"}


def random_case(rng, name, index):
    kwargs = SPACES[name](rng)
    if rng.random() < 0.7:
        kwargs["learning_rate"] = rng.uniform(0.001, MAX_LEARNING_RATE.get(name, 0.05))
    if rng.random() < 0.5:
        kwargs["lr_scheduler"] = random_scheduler_spec(
            rng, max_base_lr=MAX_LEARNING_RATE.get(name, 0.05))
    if rng.random() < 0.6 and name not in NO_WEIGHT_DECAY:
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
    names = sorted(SHAPES.get(name, PARAM_SHAPES))
    lr_mult = {n: rng.uniform(0.1, 3.0) for n in names if rng.random() < 0.3}
    wd_mult = {n: rng.uniform(0.0, 3.0) for n in names
               if rng.random() < 0.3 and name not in NO_WEIGHT_DECAY}
    grad_scale = 10 ** rng.uniform(-1.5, 1.0)
    return {"id": f"{name}-{index:02d}", "optimizer": name, "kwargs": kwargs,
            "set_lr_mult": lr_mult, "set_wd_mult": wd_mult, "dtype": dtype,
            "grad_scale": grad_scale, "seed": rng.randrange(2**31)}


def _decaying(rng, base_lr):
    """A FactorScheduler spec whose rate changes within the recorded steps."""
    return {"type": "FactorScheduler", "kwargs": {
        "base_lr": base_lr, "step": rng.randint(1, 3), "factor": rng.uniform(0.3, 0.9)}}


def _past_max_update(rng, base_lr):
    """A Poly or Cosine spec, and a begin_num_update at or past its max_update."""
    max_update = rng.randint(1, 40)
    spec = {"type": rng.choice(["PolyScheduler", "CosineScheduler"]), "kwargs": {
        "base_lr": base_lr, "max_update": max_update,
        "final_lr": base_lr * rng.uniform(0.0, 0.5)}}
    return {"lr_scheduler": spec, "begin_num_update": max_update + rng.randint(0, 50)}


# Draws that make each documented divergence of MXNet's code from its
# documentation happen (docs/mxnet_differences.md), for the cases that
# mxnet_quirks=True must reproduce: (kwargs, dtype or None) from an rng.
QUIRKS = {
    "nag": lambda rng: ({"momentum": rng.uniform(0.5, 0.95), "wd": rng.uniform(0.01, 0.1)}, None),
    "signum": lambda rng: ({"momentum": 0.0, "wd": rng.uniform(0.01, 0.1)}, None),
    "ftrl": lambda rng: ({"learning_rate": rng.uniform(0.01, 0.5),
                          "lr_scheduler": _decaying(rng, rng.uniform(0.01, 0.5))}, None),
    "nadam": lambda rng: ({"beta1": rng.uniform(0.5, 0.95),
                           "learning_rate": rng.uniform(0.001, 0.05)}, None),
    "lars": lambda rng: ({"momentum": rng.uniform(0.5, 0.95), "momentum_correction": True,
                          "lr_scheduler": _decaying(rng, rng.uniform(0.01, 0.5))}, None),
    "lbsgd": lambda rng: ({"momentum": rng.uniform(0.0, 0.95),
                           "batch_scale": rng.choice([1, 1, 2, 3]),
                           "lr_scheduler": _decaying(rng, rng.uniform(0.01, 0.5))}, None),
    "lamb": lambda rng: ({"multi_precision": True}, "float16"),
    "ftml": lambda rng: ({"lr_scheduler": {"type": "PolyScheduler", "kwargs": {
        "base_lr": rng.uniform(0.001, 0.05), "max_update": rng.randint(2, 8), "final_lr": 0.0}}},
        None),
    **{name: lambda rng: (_past_max_update(rng, rng.uniform(0.001, 0.05)), None)
       for name in ("sgd", "adam", "rmsprop", "adagrad")},
}
QUIRK_CASES = 3  # per optimizer of QUIRKS


def quirk_cases(rng, name):
    """Random cases with :data:`QUIRKS`' draws forced on them (ids ``<name>-quirks-NN``)."""
    cases = []
    for index in range(QUIRK_CASES):
        case = random_case(rng, name, index)
        forced, dtype = QUIRKS[name](rng)
        if "lr_scheduler" in forced:
            case["kwargs"].pop("begin_num_update", None)
        case["kwargs"].update(forced)
        if dtype is not None:
            case["dtype"] = dtype
        cases.append({**case, "id": f"{name}-quirks-{index:02d}"})
    return cases


def handpicked_cases(name):
    """MXNet's defaults, and combinations worth pinning down by name."""
    fixed = {"set_lr_mult": {}, "set_wd_mult": {}, "grad_scale": 1.0}
    cases = [{"id": f"{name}-defaults", "optimizer": name, "kwargs": {}, "dtype": "float32",
              "seed": 1, **fixed},
             {"id": f"{name}-scheduler-without-learning-rate", "optimizer": name,
              "kwargs": {"lr_scheduler": {"type": "FactorScheduler", "kwargs": {
                  "step": 3, "factor": 0.5, "base_lr": MAX_LEARNING_RATE.get(name, 0.05) / 2,
                  "warmup_steps": 2, "warmup_begin_lr": 0.005}}},
              "dtype": "float32", "seed": 2, **fixed}]
    if name != "test":
        kwargs = {"learning_rate": MAX_LEARNING_RATE.get(name, 0.05) / 5, "multi_precision": True}
        if name not in NO_WEIGHT_DECAY:
            kwargs["wd"] = 0.01
        if name in WITH_MOMENTUM:
            kwargs["momentum"] = 0.9
        cases.append({"id": f"{name}-fp16-master", "optimizer": name, "kwargs": kwargs,
                      "dtype": "float16", "seed": 3, **fixed})
    cases += [{"id": f"{name}-{suffix}", "optimizer": name, "kwargs": kwargs, "dtype": dtype,
               "seed": 5, **fixed} for suffix, dtype, kwargs in PINNED.get(name, [])]
    if name in DOCUMENTED_BUT_RAISES:
        cases.append({"id": f"{name}-mxnet-raises", "optimizer": name,
                      "kwargs": DOCUMENTED_BUT_RAISES[name], "dtype": "float32", "seed": 4,
                      **fixed})
    return cases


class _ZeroNoise:
    """Stands in for ``mx.nd.random.normal`` while SGLD is recorded."""

    def __call__(self, loc, scale, shape, dtype, ctx):
        del loc, scale
        return mx.nd.zeros(shape, ctx=ctx, dtype=dtype)


def run_case(case):
    rng = np.random.RandomState(case["seed"])
    kwargs = dict(case["kwargs"])
    if "lr_scheduler" in kwargs:
        kwargs["lr_scheduler"] = make_scheduler(kwargs["lr_scheduler"])
    shapes = SHAPES.get(case["optimizer"], PARAM_SHAPES)
    names = sorted(shapes)
    idx2name = dict(enumerate(names))
    opt = mx.optimizer.create(case["optimizer"], param_idx2name=idx2name, **kwargs)
    opt.set_lr_mult(case["set_lr_mult"])
    opt.set_wd_mult(case["set_wd_mult"])
    dtype = np.dtype(case["dtype"])
    weights = [mx.nd.array(rng.uniform(-1, 1, shapes[n]), dtype=dtype) for n in names]
    record = dict(case)
    record["lr_mult"] = {n: opt.lr_mult.get(n, 1.0) for n in names}
    record["wd_mult"] = {n: opt.wd_mult.get(n, 1.0) for n in names}
    record["initial"] = {n: w.asnumpy().tolist() for n, w in zip(names, weights)}
    record["grads"], record["weights"], record["learning_rates"] = [], [], []
    try:
        states = [opt.create_state_multi_precision(i, w) for i, w in enumerate(weights)]
        for _ in range(STEPS):
            grads = [mx.nd.array(rng.normal(0, case["grad_scale"], shapes[n]), dtype=dtype)
                     for n in names]
            for i, (w, g) in enumerate(zip(weights, grads)):
                # A copy: some updates (AdaDelta's) rescale the gradient in place.
                opt.update_multi_precision(i, w, g.copy(), states[i])
            record["learning_rates"].append(opt.learning_rate)
            record["grads"].append({n: g.asnumpy().tolist() for n, g in zip(names, grads)})
            record["weights"].append({n: w.asnumpy().tolist() for n, w in zip(names, weights)})
    except Exception as error:  # noqa: BLE001 - MXNet's own failure is what is recorded
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        telling = [line for line in lines if "Check failed" in line or "Cannot find" in line]
        record["mxnet_error"] = f"{type(error).__name__}: {(telling or lines or [''])[-1]}"
        record["grads"], record["weights"], record["learning_rates"] = [], [], []
    return record


def register_bertadam():
    """Registers GluonNLP 0.10.0's ``bertadam`` with MXNet, as importing GluonNLP does; a
    pickled optimizer names its class as GluonNLP's (``gluonnlp.optimizer.bert_adam``)."""
    recording.module_file("gluonnlp", "optimizer/bert_adam.py")


def registry_defaults():
    """Each registered optimizer's constructor defaults, with the base class's."""
    def defaults(klass):
        return {name: p.default for name, p in inspect.signature(klass.__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}
    base = defaults(mx.optimizer.Optimizer)
    registry = mx.optimizer.Optimizer.opt_registry
    return {"base": base,
            "optimizers": {name: defaults(k) for name, k in sorted(registry.items())}}


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
    args = recording.arguments(
        __doc__, recording.FIXTURES,
        ("--optimizers", {"nargs": "*", "default": sorted(SPACES), "choices": sorted(SPACES)}),
        ("--per-optimizer", {"type": int, "default": 10}),
        ("--seed", {"type": int, "default": 20261122}))
    mx.optimizer.optimizer.normal = _ZeroNoise()
    register_bertadam()
    meta = recording.meta(__file__, args.seed)
    (args.out / "trajectories").mkdir(parents=True, exist_ok=True)
    for name in args.optimizers:
        rng = random.Random(f"{args.seed}-{name}")
        cases = handpicked_cases(name)
        cases += [random_case(rng, name, i) for i in range(args.per_optimizer)]
        if name in QUIRKS:
            cases += quirk_cases(random.Random(f"{args.seed}-{name}-quirks"), name)
        records = [run_case(c) for c in cases]
        (args.out / "trajectories" / f"{name}.json").write_text(
            json.dumps({"meta": meta, "cases": records}))
        failed = sum("mxnet_error" in r for r in records)
        print(f"{name}: {len(records)} trajectories ({failed} where MXNet raises)")
    if set(args.optimizers) == set(SPACES):
        rng = random.Random(args.seed)
        schedules = {"meta": meta, "cases": schedule_cases(rng, 40)}
        (args.out / "mxnet_schedules.json").write_text(json.dumps(schedules))
        registry = {"meta": meta, **registry_defaults()}
        (args.out / "mxnet_registry.json").write_text(json.dumps(registry))
        print(f"recorded {len(schedules['cases'])} schedules and {len(SPACES)} registry entries")


if __name__ == "__main__":
    main()
