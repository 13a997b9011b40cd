"""Where mxopt follows MXNet's documentation rather than MXNet 1.9.1's output.

Each entry is listed in docs/mxnet_differences.md; test_parity checks that the
recorded MXNet output really differs there. Optimizer-specific rules live in
``BY_OPTIMIZER`` (one function per optimizer, ``case -> reason or None``).
"""

from collections.abc import Callable

# MXNet's optimizers that never use the learning rate.
IGNORE_LEARNING_RATE = {"adadelta", "test"}


def _stale_poly_cosine(case: dict) -> str | None:
    if case["optimizer"] in IGNORE_LEARNING_RATE:
        return None
    kwargs = case["kwargs"]
    scheduler = kwargs.get("lr_scheduler") or {}
    if (scheduler.get("type") in ("PolyScheduler", "CosineScheduler")
            and kwargs.get("begin_num_update", 0) >= scheduler["kwargs"]["max_update"]):
        return "MXNet's Poly/Cosine return a stale rate when first called past max_update"
    return None


def _nag(case: dict) -> str | None:
    kwargs = case["kwargs"]
    if (kwargs.get("momentum", 0) > 0 and kwargs.get("wd", 0) > 0
            and any(m > 0 for m in case["wd_mult"].values())):
        return "MXNet's in-place NAG kernel decays the momentum with the already-updated weight"
    return None


def _signum(case: dict) -> str | None:
    kwargs = case["kwargs"]
    if (kwargs.get("momentum", 0.9) == 0 and kwargs.get("wd", 0) > 0
            and any(m > 0 for m in case["wd_mult"].values())):
        return ("MXNet's signsgd_update kernel (momentum 0) applies wd as decoupled decay "
                "(1 - lr*wd)*w outside the sign, not inside it as documented")
    return None


def _ftrl(case: dict) -> str | None:
    kwargs = case["kwargs"]
    if _some_rate_is_zero(case):
        return "MXNet's ftrl_update divides by the learning rate, so a rate of 0 gives NaN weights"
    scheduler = kwargs.get("lr_scheduler") or {}
    if (scheduler.get("type") in ("FactorScheduler", "MultiFactorScheduler")
            and kwargs.get("learning_rate", scheduler["kwargs"]["base_lr"])
            != scheduler["kwargs"]["base_lr"]):
        return ("MXNet's Ftrl keeps learning_rate from the base class, so a learning_rate given "
                "with an lr_scheduler does not override its base_lr as documented")
    return None


def _nadam(case: dict) -> str | None:
    # Below a rate of 1e-6 the 12 recorded steps are too small to tell.
    if (case["kwargs"].get("beta1", 0.9) > 0 and len(case["initial"]) > 1
            and max(case["learning_rates"], default=0) > 1e-6):
        return ("MXNet multiplies Nadam's one momentum schedule once per parameter per update, "
                "not once per update as documented")
    return None


def _lars(case: dict) -> str | None:
    kwargs, rates = case["kwargs"], case["learning_rates"]
    if (kwargs.get("momentum", 0) > 0 and kwargs.get("momentum_correction", True)
            and any(abs(now - before) > 1e-4 * before
                    for before, now in zip(rates, rates[1:]) if before > 0)):
        return ("MXNet's LARS corrects the momentum for a change of rate only in the first "
                "parameter of each update call, not in every parameter as documented")
    return None


def _lbsgd(case: dict) -> str | None:
    from mxnet_fixtures import make_scheduler

    kwargs = case["kwargs"]
    if "lr_scheduler" not in kwargs:
        return None
    scheduler = make_scheduler(kwargs["lr_scheduler"])
    if "learning_rate" in kwargs:
        scheduler = scheduler.overridden_by(kwargs["learning_rate"])
    # rates[t]: the rate at count begin_num_update + t; MXNet's first
    # parameter reads rates[t - 1] at step t, the others rates[t].
    rates = [float(scheduler(kwargs.get("begin_num_update", 0)))] + case["learning_rates"]
    start = kwargs.get("begin_epoch", 0) * kwargs.get("updates_per_epoch", 32)
    if any((start + t) % kwargs.get("batch_scale", 1) == 0
           and abs(rates[t] - rates[t - 1]) > 1e-4 * rates[t] for t in range(1, len(rates))):
        return ("MXNet's LBSGD reads the learning rate before counting the update, so its first "
                "parameter steps with the previous count's rate and the others with the current")
    return None


def _lamb(case: dict) -> str | None:
    if case["dtype"] == "float16" and case["kwargs"].get("multi_precision"):
        return ("MXNet's one-tensor mp_lamb_update_phase2 never writes the float32 master copy "
                "back, so every step restarts from the initial weights")
    return None


def _some_rate_is_zero(case: dict) -> bool:
    """Whether a leaf steps with a learning rate of 0 (a schedule's 0, an lr_mult of 0)."""
    return any(rate * mult == 0
               for rate in case["learning_rates"] for mult in case["lr_mult"].values())


def _ftml(case: dict) -> str | None:
    if _some_rate_is_zero(case):
        return "MXNet's ftml_update divides by the learning rate, so a rate of 0 gives NaN weights"
    return None


BY_OPTIMIZER: dict[str, Callable[[dict], str | None]] = {
    "ftml": _ftml,
    "ftrl": _ftrl,
    "lamb": _lamb,
    "lars": _lars,
    "lbsgd": _lbsgd,
    "nadam": _nadam,
    "nag": _nag,
    "signum": _signum,
}

# Optimizers whose pure float16 updates (no multi_precision) are not compared
# with MXNet's, and why.
PURE_FLOAT16_NOT_COMPARED: dict[str, str] = {
    "adam": "MXNet's float16 Adam kernel rounds in an order mxopt does not reproduce",
    "lamb": ("MXNet's float16 kernels take 1 - float16(beta): 0 for beta2 >= 1 - 2**-12, which "
             "gives NaN weights; mxopt takes 1 - beta in float32"),
    "ftml": ("MXNet's float16 kernel takes 1 - float16(beta) and float16(beta)**float16(t), and "
             "v = (1 - beta2) * g^2 underflows; mxopt takes 1 - beta and 1 - beta**t in float32"),
}


def one_index_calls_only(case: dict) -> bool:
    """Whether ``mxnet_quirks`` reproduces this divergent case on the object surface's
    one-index updates only: MXNet's LAMB drops its master copy in its one-tensor kernel,
    not in the aggregated one that its Updater, its Trainer and a pytree update follow."""
    return case["optimizer"] == "lamb" and _lamb(case) is not None


def known_mxnet_divergence(case: dict) -> str | None:
    """Why mxopt's numbers are not MXNet's for this recorded case, if they are not."""
    by_optimizer = BY_OPTIMIZER.get(case["optimizer"], lambda case: None)
    return _stale_poly_cosine(case) or by_optimizer(case)
