"""The benchmark suite runs and its table adds up (its figures are not asserted: speed is
measured by running it, see docs/performance.md)."""

import json

from benchmarks import suite, targets, trees


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


def test_compile_times_are_medians_of_builds_in_turn():
    calls, compile_times = [], {"a": iter([5.0, 1.0, 3.0]), "b": iter([2.0, 9.0, 4.0])}

    def builder(variant):
        def build():
            calls.append(variant)
            seconds = next(compile_times[variant])
            return suite.Step(None, variant, None, None, seconds, seconds / 4, seconds / 8, 0)
        return build

    steps = suite._compiled_in_turn({"a": builder("a"), "b": builder("b")}, 3)
    assert calls == ["a", "b", "b", "a", "a", "b"]  # every other round in reverse
    assert list(steps) == ["a", "b"]
    assert [(s.compile_s, s.trace_s, s.lower_s) for s in steps.values()] == [
        (3.0, 0.75, 0.375), (4.0, 1.0, 0.5)]


def _rows(tree, optimizer, step_ms, compile_s, of_roofline, peak_ratio):
    """A tree's four rows for ``optimizer``: optax's figures then mxopt's and packed's."""
    return [suite.Row(tree, 1, optimizer, v, step, step / step_ms[0], comp, 1.0,
                      of_roofline=roof, peak_ratio=peak)
            for v, step, comp, roof, peak in zip(suite.VARIANTS, step_ms, compile_s,
                                                 of_roofline, peak_ratio)]


def test_the_targets_table_reads_each_target_off_the_rows():
    rows = (_rows("resnet50", "adam", (40, 30, 25, 24), (2, 2, 0.1, 0.1),
                  (0.6, 0.8, 0.96, 1), (1, 1, 1, 1))
            + _rows("transformer", "adam", (80, 84, 52, 53), (8, 7, 0.1, 0.1),
                    (0.7, 0.6, 1.02, 1), (1, 1.2, 1, 1))
            + _rows("3000-leaves", "adam", (90, 90, 4, 3), (20, 19, 0.5, 0.2),
                    (0, 0, 0.8, 1), (1, 1, 1, 1)))
    lines = targets.table(rows).splitlines()
    assert lines[2:] == [
        "| pytree step ≤ 1.0x optax | adam 0.75x / 1.05x | no |",
        "| pytree compile ≤ 1.0x optax at 3,000 leaves | adam 0.95x | yes |",
        "| packed ≥ 90% of the roofline | adam 96% / 102% | yes |",
        "| packed compile ≤ 0.05x optax's pytree compile at 3,000 leaves | adam 0.025x | yes |",
        "| peak memory of a donated step ≤ 1.1x params + grads + state | adam 1.00 / 1.20 | no |"]
