"""A fixed share of customers, chosen by a hash of their id (bounded training frames)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

__all__ = [
    "SAMPLE_BUCKETS",
    "UNKEYED_TABLES",
    "CustomerSample",
    "bucket_expr",
    "buckets_holding",
    "covering",
    "restrict",
]

UNKEYED_TABLES = frozenset({"calls"})
"""Tables not keyed by ``customer_id`` (the call graph joins two customers per row)."""

SAMPLE_BUCKETS = 1_000_000
"""Resolution of :attr:`CustomerSample.share`: customers fall in one of this many buckets."""


@dataclass(frozen=True)
class CustomerSample:
    """The customers whose ``hash(customer_id, seed)`` falls in the first ``share`` of buckets.

    The choice depends on the id and the seed only, so a customer is in or out of the sample
    at every cut alike, whatever the row order or the file layout.

    Parameters
    ----------
    share
        Fraction of customers kept, in ``(0, 1]``.
    seed
        Hash seed.
    """

    share: float
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.share <= 1.0:
            raise ValueError(f"a customer sample share must be in (0, 1], got {self.share}")

    @classmethod
    def bounded(cls, customers: int, max_customers: int, seed: int = 0) -> CustomerSample | None:
        """About ``max_customers`` of ``customers``; None (everyone) when they fit."""
        if max_customers <= 0:
            raise ValueError(f"max_customers must be positive, got {max_customers}")
        if customers <= max_customers:
            return None
        return cls(share=max_customers / customers, seed=seed)

    @property
    def keep(self) -> int:
        """Sampled customers are those whose hash bucket (of :data:`SAMPLE_BUCKETS`) is below."""
        return max(1, round(self.share * SAMPLE_BUCKETS))

    def within(self, wider: CustomerSample | None) -> bool:
        """Whether every customer of this sample is in ``wider`` (None: everyone): a
        sample of the same seed and no larger share is."""
        return wider is None or (wider.seed == self.seed and self.keep <= wider.keep)

    def expr(self, column: str = "customer_id") -> pl.Expr:
        """True for the rows of sampled customers."""
        return _hash(column, self.seed) < self.keep

    def calls_expr(self) -> pl.Expr:
        """True for the calls (rows of ``calls``) a sampled customer made or received."""
        return self.expr("caller_id") | self.expr("callee_id")


def covering(samples: Iterable[CustomerSample | None]) -> CustomerSample | None:
    """The narrowest sample holding every customer of ``samples``: the widest of them when
    they share a seed, else everyone (None; for no samples too)."""
    widest: CustomerSample | None = None
    for sample in samples:
        if sample is None:
            return None
        if widest is None or widest.within(sample):
            widest = sample
        elif not sample.within(widest):
            return None
    return widest


def _hash(column: str, seed: int) -> pl.Expr:
    return pl.col(column).hash(seed=seed) % SAMPLE_BUCKETS


def bucket_expr(buckets: int, column: str = "customer_id") -> pl.Expr:
    """The bucket (``0 .. buckets - 1``, UInt32) of each row's customer in a run split in
    ``buckets``: all rows of a customer meet in one bucket.

    Buckets are consecutive ranges of the sample hash (seed 0), so a :class:`CustomerSample`
    of seed 0 lies in the first buckets (:func:`buckets_holding`): a sampled profile reads
    only those.
    """
    if buckets <= 0:
        raise ValueError(f"buckets must be positive, got {buckets}")
    return (_hash(column, 0) * buckets // SAMPLE_BUCKETS).cast(pl.UInt32)


def buckets_holding(sample: CustomerSample | None, buckets: int) -> range:
    """The buckets (of :func:`bucket_expr`) where ``sample``'s customers are (None: all)."""
    if sample is None or sample.seed != 0:
        return range(buckets)
    return range(min(buckets, -(-sample.keep * buckets // SAMPLE_BUCKETS)))


def restrict(
    tables: dict[str, pl.LazyFrame], sample: CustomerSample | None
) -> dict[str, pl.LazyFrame]:
    """Every customer-keyed table filtered to ``sample``'s customers (None: unchanged), and
    ``calls`` to the calls they made or received (:meth:`CustomerSample.calls_expr`: a
    contact outside the sample is still somebody's contact).
    """
    if sample is None:
        return dict(tables)
    keep = sample.expr()
    return {
        name: frame.filter(sample.calls_expr() if name == "calls" else keep)
        for name, frame in tables.items()
    }
