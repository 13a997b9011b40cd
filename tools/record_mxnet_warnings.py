"""Record which optimizer constructions MXNet 1.9.1 warns about, and with what text.

Run with the interpreter of MXNet's virtual environment (see record_mxnet.py)::

    /tmp/mxnet-env/bin/python tools/record_mxnet_warnings.py

MXNet's ``Optimizer.__init__`` prints a ``UserWarning`` when an optimizer's
``learning_rate`` (given, or the optimizer's own default, as Adam's 0.001)
replaces a scheduler's different ``base_lr``. For every optimizer of
record_mxnet.py, this builds it with handpicked and random schedulers and
learning rates through ``mx.optimizer.create`` and writes what it printed to
``tests/fixtures/mxnet_warnings.json``; the tests build the same through
``mxopt.create`` and compare the warnings mxopt emits.
"""

import contextlib
import io
import json
import random

import mxnet as mx
import recording
from record_mxnet import SPACES, make_scheduler, random_scheduler_spec, register_bertadam

# (scheduler, learning_rate or None for not given), before the random ones.
HANDPICKED = [
    ({"type": "FactorScheduler", "kwargs": {"step": 10, "factor": 0.5}}, None),
    ({"type": "FactorScheduler", "kwargs": {"step": 10, "factor": 0.5}}, 0.01),
    ({"type": "FactorScheduler", "kwargs": {"step": 10, "factor": 0.5}}, 0.5),
    ({"type": "FactorScheduler", "kwargs": {"step": 10, "factor": 0.5, "base_lr": 0.1,
                                            "warmup_steps": 5}}, 0.5),
    ({"type": "PolyScheduler", "kwargs": {"max_update": 20, "base_lr": 0.01}}, None),
    ({"type": "CosineScheduler", "kwargs": {"max_update": 20, "base_lr": 0.5}}, 0.5),
    ({"type": "CosineScheduler", "kwargs": {"max_update": 20, "base_lr": 0.01}}, 0.5),
    ({"type": "MultiFactorScheduler", "kwargs": {"step": [5, 10], "base_lr": 0.001}}, None),
]


def warnings_of(name: str, spec: dict, learning_rate: float | None) -> str:
    """What ``mx.optimizer.create`` prints while it builds the optimizer."""
    kwargs = {"lr_scheduler": make_scheduler(spec)}
    if learning_rate is not None:
        kwargs["learning_rate"] = learning_rate
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        mx.optimizer.create(name, **kwargs)
    return printed.getvalue()


def main():
    args = recording.arguments(__doc__, recording.FIXTURES / "mxnet_warnings.json",
                               ("--per-optimizer", {"type": int, "default": 6}),
                               ("--seed", {"type": int, "default": 20261203}))
    register_bertadam()
    cases = []
    for name in sorted(SPACES):
        rng = random.Random(f"{args.seed}-{name}")
        drawn = []
        for _ in range(args.per_optimizer):
            spec = random_scheduler_spec(rng)
            base_lr = spec["kwargs"]["base_lr"]
            drawn.append((spec, rng.choice([None, base_lr, rng.uniform(0.001, 0.5)])))
        for i, (spec, learning_rate) in enumerate(HANDPICKED + drawn):
            cases.append({"id": f"{name}-{i:02d}", "optimizer": name, "lr_scheduler": spec,
                          "learning_rate": learning_rate,
                          "printed": warnings_of(name, spec, learning_rate)})
    args.out.write_text(json.dumps({"meta": recording.meta(__file__, args.seed), "cases": cases},
                                   indent=1))
    print(f"{len(cases)} constructions, {sum(bool(c['printed']) for c in cases)} with a warning")


if __name__ == "__main__":
    main()
