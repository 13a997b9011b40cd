"""The benchmark suite runs and its table adds up (its figures are not asserted: speed is
measured by running it, see docs/performance.md)."""

import json

from benchmarks import suite, trees


def test_the_trees_have_the_documented_sizes():
    assert (len(trees.resnet50_shapes()), trees.size(trees.resnet50_shapes())) == (161, 25557032)
    assert len(trees.transformer_shapes()) == 1028
    assert trees.size(trees.transformer_shapes()) == 58999296
    assert len(trees.many_leaves_shapes()) == 3000


def test_the_suite_prints_a_row_per_variant(capsys):
    rows = suite.main(["--trees", "tiny", "--optimizers", "sgd-momentum", "lamb",
                       "--rounds", "3", "--device", "cpu", "--sweep", "--no-training"])
    out = capsys.readouterr().out
    assert out.count("| tiny | 4 |") == 8
    assert [(r.optimizer, r.variant) for r in rows] == [
        (o, v) for o in ("sgd-momentum", "lamb") for v in suite.VARIANTS]
    for r in rows:
        assert r.step_ms > 0 and r.compile_s > 0 and r.gbps > 0
        assert 0 < r.trace_s and 0 < r.lower_s and r.trace_s + r.lower_s < r.compile_s
        # a donated step holds params, grads and state once, plus what it adds
        assert r.peak_ratio >= 0.99
        assert 0 < r.of_bandwidth < 5 and r.update_share is None
    optax_row = next(r for r in rows if r.variant == "optax")
    assert optax_row.vs_optax == 1.0


def test_the_sweep_the_training_step_and_the_json_record(tmp_path):
    path = tmp_path / "run.json"
    rows = suite.main(["--trees", "--optimizers", "adagrad", "--rounds", "2", "--sweep", "1", "8",
                       "--json", str(path)])
    assert [(r.tree, r.leaves) for r in rows[:8]] == [("sweep-1", 1)] * 4 + [("sweep-8", 8)] * 4
    assert all(trees.size(trees.sweep_shapes(n)) == trees.SWEEP_SIZE for n in (1, 8))
    training = rows[8:]
    assert [r.variant for r in training] == ["optax training step", "mxopt training step"]
    for r in training:  # the update is part of the step it is timed against
        assert r.tree == "nnx-mlp" and r.leaves == 6 and 0 < r.update_share < 1
        assert r.gbps is None and r.peak_ratio is None
    record = json.loads(path.read_text())
    assert record["command"].startswith("python -m benchmarks --trees --optimizers adagrad")
    assert record["bandwidth_gbps"] > 0 and "bandwidth" in record["machine"]
    assert [suite.Row(**row) for row in record["rows"]] == rows
