"""The benchmark suite runs and its table adds up (its figures are not asserted: speed is
measured by running it, see docs/performance.md)."""


from benchmarks import suite, trees


def test_the_trees_have_the_documented_sizes():
    assert (len(trees.resnet50_shapes()), trees.size(trees.resnet50_shapes())) == (161, 25557032)
    assert len(trees.transformer_shapes()) == 1028
    assert trees.size(trees.transformer_shapes()) == 58999296
    assert len(trees.many_leaves_shapes()) == 3000


def test_the_suite_prints_a_row_per_variant(capsys):
    rows = suite.main(["--trees", "tiny", "--optimizers", "sgd-momentum", "lamb",
                       "--rounds", "3", "--device", "cpu"])
    out = capsys.readouterr().out
    assert out.count("| tiny | 4 |") == 8
    assert [(r.optimizer, r.variant) for r in rows] == [
        (o, v) for o in ("sgd-momentum", "lamb") for v in suite.VARIANTS]
    for r in rows:
        assert r.step_ms > 0 and r.compile_s > 0 and r.gbps > 0
        # a donated step holds params, grads and state once, plus what it adds
        assert r.peak_ratio >= 0.99
    optax_row = next(r for r in rows if r.variant == "optax")
    assert optax_row.vs_optax == 1.0
