"""What reading one untrusted file may cost: :class:`ReadLimits`, spent through a budget.

Every reader of bytes from elsewhere (:mod:`mxopt.mxnet.files`,
``Updater.set_states``, :mod:`mxopt.mxnet.importer`) charges what it is about to
allocate -- each array, each sparse array made dense, each pickled object,
memo entry and reference followed -- to one budget per file *before*
allocating it, and stops with a ``ValueError`` once the budget is spent. The
work a reader does is proportional to what it charges, so the budget bounds
time as well as memory.
"""

from __future__ import annotations

import dataclasses


class LimitExceeded(ValueError):
    """Decoding a file would cost more than its :class:`ReadLimits` allow."""


@dataclasses.dataclass(frozen=True)
class ReadLimits:
    """The most that decoding one file may cost.

    A file of ``n`` bytes may decode to at most ``max(min_bytes,
    bytes_per_byte * n)`` bytes, counted as the arrays it holds (sparse ones
    at their dense size), 64 bytes for each object, reference and memo entry
    of a pickle, and what each pickled call copies; its containers may nest
    at most ``max_depth`` deep. The defaults read every file MXNet writes (an
    array decodes to its size in the file) and keep a hostile file of 1 MB
    under about 100 MiB and a few seconds. Raise them for a file you trust
    whose sparse arrays are much larger dense.
    """
    bytes_per_byte: float = 16
    min_bytes: int = 64 * 2**20
    max_depth: int = 64

    def __post_init__(self):
        if not (self.bytes_per_byte >= 1 and self.min_bytes >= 0 and self.max_depth >= 1):
            raise ValueError(f"{self}: bytes_per_byte must be >= 1, min_bytes >= 0 and "
                             "max_depth >= 1")

    def budget(self, size: int) -> Budget:
        """The budget of a file of ``size`` bytes."""
        return Budget(int(max(self.min_bytes, self.bytes_per_byte * size)), self.max_depth, size)


DEFAULT_LIMITS = ReadLimits()
"""The limits every reader applies unless given others."""


class Budget:
    """What is left of one file's allowance, spent as the reader goes."""

    def __init__(self, limit: int, max_depth: int, size: int):
        self.limit, self.left, self.max_depth, self.size = limit, limit, max_depth, size

    def spend(self, nbytes: int, what: str) -> None:
        """Charges ``nbytes`` for ``what``, before it is allocated.

        Raises:
          LimitExceeded: the budget does not cover it.
        """
        if nbytes > self.left:
            raise LimitExceeded(
                f"{what} would take decoding past {self.limit} bytes, the most ReadLimits "
                f"allow for a file of {self.size} bytes (pass a larger ReadLimits to read a "
                "file you trust)")
        self.left -= nbytes

    def check_depth(self, depth: int, what: str) -> None:
        """Refuses containers nested deeper than ``max_depth`` (or a container in itself)."""
        if depth > self.max_depth:
            raise LimitExceeded(f"{what} is nested more than {self.max_depth} deep (ReadLimits."
                                "max_depth), or holds itself")
