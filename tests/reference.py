"""A NumPy reference for MXNet's sgd, nag and adam, and its learning rate at each update, for
randomized tests.

Written from MXNet's documented update formulas and the order of operations
of its kernels: the learning rate (schedule, lr_mult, Adam's bias correction)
is computed in Python floats as MXNet's Python side does, the elementwise
update in float32 as its kernels do. Schedulers are stateful here, called
once per update with an increasing count, as MXNet calls them.
"""

import math

import numpy as np

F32 = np.float32


class StatefulScheduler:
    """MXNet's scheduler semantics, one call per update, counts increasing."""

    def __init__(self, kind, base_lr=0.01, warmup_steps=0, warmup_begin_lr=0.0,
                 warmup_mode="linear", **kw):
        self.kind, self.kw = kind, kw
        self.lr = self.base_lr = base_lr
        self.warmup = (warmup_steps, warmup_begin_lr, warmup_mode)
        self.decays = 0

    def __call__(self, n):
        steps, begin, mode = self.warmup
        if n < steps:
            return begin if mode == "constant" else begin + (self.base_lr - begin) * n / steps
        kw = self.kw
        if self.kind == "FactorScheduler":
            # Decay once for every full `step` updates that n has passed.
            while n > (self.decays + 1) * kw["step"]:
                self.decays += 1
                self.lr = max(self.lr * kw.get("factor", 1.0), kw.get("stop_factor_lr", 1e-8))
            return self.lr
        if self.kind == "MultiFactorScheduler":
            while self.decays < len(kw["step"]) and n > kw["step"][self.decays]:
                self.decays += 1
                self.lr *= kw.get("factor", 1.0)
            return self.lr
        final, top = kw.get("final_lr", 0.0), kw["max_update"]
        progress = min(n - steps, top - steps) / (top - steps)
        if self.kind == "PolyScheduler":
            shape = (1 - progress) ** kw.get("pwr", 2)
        else:
            shape = (1 + math.cos(math.pi * progress)) / 2
        return final + (self.base_lr - final) * shape


def run(name, kwargs, params, grads_seq, lr_mult, wd_mult):
    """Weights after each step, for float32 params given as dicts of arrays."""
    kw = dict(kwargs)
    sched = kw.get("lr_scheduler")
    lr0 = kw.get("learning_rate", 0.001 if name == "adam" else None)
    if sched is not None:
        sched = StatefulScheduler(sched["type"], **sched["kwargs"])
        if lr0 is not None and sched.kind in ("FactorScheduler", "MultiFactorScheduler"):
            sched.lr = lr0
    lr0 = 0.01 if lr0 is None else lr0
    rescale, wd = F32(kw.get("rescale_grad", 1.0)), kw.get("wd", 0.0)
    clip = kw.get("clip_gradient")
    momentum = F32(kw.get("momentum", 0.0))
    beta1, beta2 = kw.get("beta1", 0.9), kw.get("beta2", 0.999)
    eps = F32(kw.get("epsilon", 1e-8))
    w = {k: np.array(v, F32) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in w.items()}
    v2 = {k: np.zeros_like(v) for k, v in w.items()}
    t = kw.get("begin_num_update", 0)
    out = []
    for grads in grads_seq:
        t += 1
        base = sched(t) if sched is not None else lr0
        for k in w:
            g = rescale * np.asarray(grads[k], F32)
            lr, wdk = F32(base * lr_mult[k]), F32(wd * wd_mult[k])
            if name == "adam":
                g = g + wdk * w[k]
                if clip is not None:
                    g = np.clip(g, -F32(clip), F32(clip))
                m[k] = F32(beta1) * m[k] + (F32(1) - F32(beta1)) * g
                v2[k] = F32(beta2) * v2[k] + (F32(1) - F32(beta2)) * g * g
                lr_t = F32(base * lr_mult[k] * math.sqrt(1 - beta2**t) / (1 - beta1**t))
                w[k] = w[k] - lr_t * m[k] / (np.sqrt(v2[k]) + eps)
                continue
            if clip is not None:
                g = np.clip(g, -F32(clip), F32(clip))
            g = g + wdk * w[k]
            if momentum == 0:
                w[k] = w[k] - lr * g
            elif name == "sgd":
                m[k] = momentum * m[k] - lr * g
                w[k] = w[k] + m[k]
            else:  # nag, with the learning rate inside the buffer as MXNet's kernel has it
                m[k] = momentum * m[k] - lr * g
                w[k] = w[k] + momentum * m[k] - lr * g
        out.append({k: v.copy() for k, v in w.items()})
    return out


def base_rates(kw, steps, default_lr):
    """The learning rate (before ``lr_mult``) at each update, as MXNet's base class sets it.

    A ``learning_rate`` given with a Factor/MultiFactor scheduler replaces its
    ``base_lr`` after warmup; Poly and Cosine decay from their own.
    """
    lr = kw.get("learning_rate", default_lr)
    spec = kw.get("lr_scheduler")
    if spec is None:
        return [lr] * steps
    sched = StatefulScheduler(spec["type"], **spec["kwargs"])
    if lr is not None and sched.kind in ("FactorScheduler", "MultiFactorScheduler"):
        sched.lr = lr
    begin = kw.get("begin_num_update", 0)
    return [sched(begin + i + 1) for i in range(steps)]
