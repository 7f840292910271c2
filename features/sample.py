"""A fixed share of customers, chosen by a hash of their id (bounded training frames)."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

__all__ = ["SAMPLE_BUCKETS", "UNKEYED_TABLES", "CustomerSample", "restrict"]

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

    def expr(self, column: str = "customer_id") -> pl.Expr:
        """True for the rows of sampled customers."""
        keep = max(1, round(self.share * SAMPLE_BUCKETS))
        return pl.col(column).hash(seed=self.seed) % SAMPLE_BUCKETS < keep


def restrict(
    tables: dict[str, pl.LazyFrame], sample: CustomerSample | None
) -> dict[str, pl.LazyFrame]:
    """Every customer-keyed table filtered to ``sample``'s customers (None: unchanged).

    The tables of :data:`UNKEYED_TABLES` are passed through whole: a contact outside the
    sample is still somebody's contact.
    """
    if sample is None:
        return dict(tables)
    keep = sample.expr()
    return {
        name: frame if name in UNKEYED_TABLES else frame.filter(keep)
        for name, frame in tables.items()
    }
