"""mxopt.mxnet.importer: MXNet's pickled optimizers and states, checked and converted.

The files are MXNet 1.9.1's (tools/record_mxnet_runs.py,
tools/record_mxnet_files.py); the trajectories they continue are checked in
test_mxnet_runs.py.
"""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from mxnet_fixtures import FIXTURES, mxnet_optimizer

import mxopt
from mxopt import optimizer as mo
from mxopt.mxnet import files as mxnet_files
from mxopt.mxnet import importer as mxnet_import
from mxopt.mxnet.importer import MXNetImportError

RUNS = FIXTURES / "mxnet_runs"
RESUME = json.loads((RUNS / "runs.json").read_text())["resume"]
STATES = FIXTURES / "mxnet_files" / "states"


def _case(case_id: str) -> dict:
    return next(c for c in RESUME if c["id"] == case_id)


def _file(case: dict, kind: str = "states_with_optimizer"):
    return RUNS / "resume" / case["files"][kind]


def _params(case: dict) -> dict:
    return {n: jnp.asarray(w) for n, w in
            mxnet_files.load_params(RUNS / "resume" / case["files"]["params"]).items()}


@pytest.mark.parametrize("case", RESUME, ids=lambda c: c["id"])
def test_imported_optimizer_is_the_one_mxnet_pickled(case):
    """Class, arguments (``mxnet_quirks``, to continue MXNet's run), scheduler (MXNet's has
    mutated itself) and counts."""
    imported = mxnet_import.import_optimizer(_file(case))
    built = mxnet_optimizer(case, mxnet_quirks=True)
    kwargs, names = case["kwargs"], case["names"]
    assert type(imported) is type(built)
    got, want = imported.get_config(), built.get_config()
    for key in ("index_update_count", "num_update"):
        got.pop(key)
    assert want.pop("shared_state") == {}
    saved = mxnet_files.load_states(_file(case)).optimizer.attributes
    # Nadam's object keeps its momentum-schedule product P; the state keeps 1 - P
    assert got.pop("shared_state") == ({"schedule": float(np.float32(1 - saved["m_schedule"]))}
                                       if case["optimizer"] == "nadam" else {})
    begin = kwargs.get("begin_num_update", 0)
    assert want.pop("index_update_count") == []
    assert want.pop("num_update") == begin
    if case["optimizer"] == "ftrl" and "learning_rate" not in kwargs and "lr_scheduler" in kwargs:
        # MXNet's Ftrl holds learning_rate=0.1 beside its scheduler without using it.
        got["arguments"]["learning_rate"] = want["arguments"]["learning_rate"]
    if case["optimizer"] == "bertadam":
        # GluonNLP's BERTAdam keeps rescale_grad as a float32 array once it has updated.
        arguments = want["arguments"]
        arguments["rescale_grad"] = float(np.float32(arguments["rescale_grad"]))
    assert got == want
    steps = 0 if case["optimizer"] == "test" else 3  # MXNet's Test never counts its updates
    assert imported._index_update_count == {i: begin + steps for i in range(steps and len(names))}
    assert imported.num_update == begin + steps


def test_imported_scheduler_computes_every_count():
    """A MultiFactorScheduler saved mid-run by Trainer.save_states (MXNet had mutated it)."""
    saved = mxnet_files.load_states(STATES / "trainer.states").optimizer
    scheduler = mxnet_import.import_scheduler(saved.attributes["lr_scheduler"])
    assert scheduler == mxopt.MultiFactorScheduler(step=[1, 3], factor=0.3, base_lr=0.01)
    with pytest.raises(MXNetImportError, match="no mxopt scheduler for MXNet's Custom"):
        mxnet_import.import_scheduler(mxnet_files.MXNetObject("Custom", "x", {}))


def test_states_without_an_optimizer():
    with pytest.raises(MXNetImportError, match="holds no optimizer"):
        mxnet_import.import_optimizer(STATES / "module-0003.states")


def test_unsupported_optimizers():
    with pytest.raises(MXNetImportError, match="no mxopt optimizer for MXNet's Fancy"):
        mxnet_import.import_optimizer(mxnet_files.MXNetObject("Fancy", "x", {}))
    with pytest.raises(MXNetImportError, match="MXNet's LARS states is not supported"):
        mxnet_import.index_state(mo.create("lars"), 0, jnp.ones(3), None)


def test_states_that_do_not_fit():
    case = _case("adam-defaults")
    params = _params(case)
    optimizer = mxnet_import.import_optimizer(_file(case))
    with pytest.raises(MXNetImportError, match="say which MXNet index"):
        mxnet_import.import_state(_file(case), params, mo.create("adam"))
    names = case["names"]
    swapped = [names[1], names[0], *names[2:]]
    with pytest.raises(MXNetImportError, match=r"index 1 \(leaf 'bn0_beta'\): MXNet's mean is an "
                                               r"array float32\[2, 2, 2\], the optimizer's is "
                                               r"float32\[5\]"):
        mxnet_import.import_state(_file(case), params, optimizer, indices=swapped)
    with pytest.raises(MXNetImportError, match=r"indices \[7\] have no saved state"):
        mxnet_import.import_state(_file(case), params, optimizer,
                                  indices={**{n: i for i, n in enumerate(names)}, names[0]: 7})
    partial = {n: params[n] for n in names[1:]}
    with pytest.raises(MXNetImportError, match="saved indices \\[0\\] no params leaf"):
        mxnet_import.import_state(_file(case), partial, optimizer)
    with pytest.raises(ValueError, match=f"missing \\['{names[1]}'\\]"):
        mxnet_import.import_state(_file(case), partial, optimizer, indices=names[2:])
    optimizer._index_update_count[0] += 1
    with pytest.raises(MXNetImportError, match="updated different numbers of times"):
        mxnet_import.import_state(_file(case), params, optimizer)


def test_states_of_another_configuration():
    case = _case("sgd-fp16-master")  # momentum 0.9 and master copies of float16 weights
    params = _params(case)
    no_master = mo.create("sgd", momentum=0.9, param_idx2name=dict(enumerate(case["names"])))
    with pytest.raises(MXNetImportError, match=r"expected an array \(trace\), MXNet saved a "
                                               r"tuple of 2"):
        mxnet_import.import_state(_file(case), params, no_master)
    no_momentum = mo.create("sgd", multi_precision=True,
                            param_idx2name=dict(enumerate(case["names"])))
    with pytest.raises(MXNetImportError, match="keeps no state, but MXNet saved an array"):
        mxnet_import.import_state(_file(case), params, no_momentum)
    updater = mo.get_updater(no_master)
    updater.set_states(_file(case).read_bytes())  # MXNet's file: its optimizer replaces ours
    assert updater.optimizer.multi_precision
    centered = mo.get_updater(mo.create("rmsprop", centered=True))
    centered.set_states(_file(_case("rmsprop-defaults"), "states").read_bytes())
    with pytest.raises(MXNetImportError, match=r"index 0: expected a tuple of 3"):
        centered(0, jnp.ones((2, 2, 2)), jnp.ones((2, 2, 2)))


def test_signum_momentum_is_negated():
    """MXNet's signum keeps mom = momentum * mom - (1 - momentum) * g; mxopt the mean of g."""
    case = _case("signum-defaults")
    saved = mxnet_files.load_states(_file(case)).states
    state = mxnet_import.import_state(_file(case), _params(case),
                                      mxnet_import.import_optimizer(_file(case)))
    moms = [node.mom for node in jax_nodes(state) if type(node).__name__ == "ScaleBySignumState"]
    for i, name in enumerate(case["names"]):
        assert (moms[0][name] == -saved[i]).all()


def jax_nodes(state):
    """Every NamedTuple in a state, outermost first."""
    return list(mxopt.structure.state_nodes(state))
