"""``python -m mxopt demo``: runs the demonstration (see :mod:`mxopt.demo`)."""

import sys


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] != "demo":
        print("usage: mxopt demo [--steps N] [--optimizers sgd nag adam]")
        raise SystemExit(2)
    from mxopt import demo
    demo.main(argv[1:])


if __name__ == "__main__":
    main()
