"""``mxopt demo`` (or ``python -m mxopt demo``): runs the demo (see :mod:`mxopt.demo`)."""

import sys

USAGE = """usage: mxopt demo [--steps N] [--optimizers NAME ...] [--output PATH] [--seed S]

Trains a classifier of scikit-learn's digits with MXNet recipes (sgd, nag,
adam, lamb, rmsprop), prints a table and saves a plot. `mxopt demo --help`
tells more."""


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return
    if argv[:1] != ["demo"]:
        print(USAGE, file=sys.stderr)
        raise SystemExit(2)
    from mxopt import demo
    demo.main(argv[1:])


if __name__ == "__main__":
    main()
