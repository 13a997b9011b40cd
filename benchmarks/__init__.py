"""Benchmarks of mxopt against optax: ``python -m benchmarks --help``."""
