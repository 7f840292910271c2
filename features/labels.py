"""Forward-looking labels (churn within the horizon, next loyalty class): never features."""

from __future__ import annotations

import datetime as dt

import polars as pl

from crm_engine.contracts import score_values
from features.sample import CustomerSample
from features.surveys import latest_survey
from features.who import population
from features.window import to_date

__all__ = [
    "LABEL_COLUMNS",
    "LOYALTY_CLASSES",
    "build_labels",
    "churn_label",
    "is_label",
    "labels_columns",
    "loyalty_class",
    "realised_outcomes",
    "revenue_between",
]

LOYALTY_CLASSES = score_values("loyalty_class")
"""The ``crm.scores/v1`` loyalty classes: promoter, passive, detractor."""


def churn_label(horizon_days: int) -> str:
    """Name of the churn label column for a horizon: ``churned_within_<h>d``."""
    return f"churned_within_{horizon_days}d"


LABEL_COLUMNS = ("loyalty_class", "next_nps")
"""Label columns whose name does not depend on the horizon."""


def is_label(name: str) -> bool:
    """Whether a column is one of :func:`build_labels`' label columns (never a feature)."""
    if name in LABEL_COLUMNS:
        return True
    prefix, suffix = "churned_within_", "d"
    middle = name.removeprefix(prefix).removesuffix(suffix)
    return name.startswith(prefix) and name.endswith(suffix) and middle.isdigit()


def labels_columns(horizon_days: int, id_dtype: pl.DataType = pl.Int64) -> dict[str, pl.DataType]:
    """Declared output of :func:`build_labels`."""
    return {
        "customer_id": id_dtype,
        churn_label(horizon_days): pl.Boolean(),
        "loyalty_class": pl.String(),
        "next_nps": pl.Int64(),
    }


def loyalty_class(nps: pl.Expr) -> pl.Expr:
    """NPS 9-10 promoter, 7-8 passive, 0-6 detractor, null stays null."""
    return (
        pl.when(nps.is_null())
        .then(None)
        .when(nps >= 9)
        .then(pl.lit("promoter"))
        .when(nps >= 7)
        .then(pl.lit("passive"))
        .otherwise(pl.lit("detractor"))
    )


def build_labels(
    tables: dict[str, pl.LazyFrame], as_of: dt.date | str, horizon_days: int
) -> pl.LazyFrame:
    """Labels of the profile population at ``as_of``, looking ``horizon_days`` ahead.

    - ``churned_within_<h>d``: ``churn_date`` in ``[as_of, as_of + h)``. The population holds
      customers with ``churn_date`` null or ``>= as_of``, so a churn dated ``as_of`` itself
      (the first unobserved day) is unknown at ``as_of`` and therefore a positive label.
    - ``loyalty_class``: from the first survey answered in ``[as_of, as_of + h)``: promoter
      (NPS 9-10), passive (7-8), detractor (0-6); null when the customer answered none.
    - ``next_nps``: that survey's NPS.

    Parameters
    ----------
    tables
        The dict of ``crm_engine.io.load_tables``; ``surveys`` is optional (labels null).
    as_of
        First day not observed by the features.
    horizon_days
        Length of the label window in days.

    Returns
    -------
    pl.LazyFrame
        One row per customer of the profile population, sorted by ``customer_id``.
    """
    if horizon_days <= 0:
        raise ValueError(f"horizon_days={horizon_days} should be > 0")
    if "customers" not in tables:
        raise ValueError("build_labels needs the customers table")
    as_of = to_date(as_of)
    end = as_of + dt.timedelta(days=horizon_days)
    churn = pl.col("churn_date")
    base = population(tables["customers"], as_of).select(
        "customer_id",
        (churn.is_not_null() & (churn >= pl.lit(as_of)) & (churn < pl.lit(end))).alias(
            churn_label(horizon_days)
        ),
    )
    surveys = tables.get("surveys")
    if surveys is None:
        labels = base.with_columns(
            pl.lit(None, dtype=pl.String).alias("loyalty_class"),
            pl.lit(None, dtype=pl.Int64).alias("next_nps"),
        )
    else:
        start_ts = dt.datetime.combine(as_of, dt.time())
        end_ts = dt.datetime.combine(end, dt.time())
        window = surveys.filter(
            (pl.col("answered_at") >= pl.lit(start_ts)) & (pl.col("answered_at") < pl.lit(end_ts))
        )
        nxt = latest_survey(window, pick="first").select(
            "customer_id", pl.col("nps").cast(pl.Int64).alias("next_nps")
        )
        labels = base.join(nxt, on="customer_id", how="left").select(
            "customer_id",
            churn_label(horizon_days),
            loyalty_class(pl.col("next_nps")).alias("loyalty_class"),
            "next_nps",
        )
    return labels.sort("customer_id")


def revenue_between(
    transactions: pl.LazyFrame,
    start: dt.date,
    end: dt.date,
    sample: CustomerSample | None = None,
) -> pl.LazyFrame:
    """Each customer's revenue (the sum of ``amount``, refunds included) over ``[start, end)``.

    Returns
    -------
    pl.LazyFrame
        ``customer_id``, ``actual`` (Float64): customers with a transaction in the window only.
    """
    day = pl.col("ts").dt.date()
    if sample is not None:
        transactions = transactions.filter(sample.expr())
    return (
        transactions.filter((day >= pl.lit(start)) & (day < pl.lit(end)))
        .group_by("customer_id")
        .agg(pl.col("amount").cast(pl.Float64).sum().alias("actual"))
    )


def realised_outcomes(
    customers: pl.LazyFrame,
    transactions: pl.LazyFrame,
    start: dt.date,
    churn_end: dt.date,
    revenue_end: dt.date,
) -> pl.LazyFrame:
    """What became of every customer of the table after ``start``: the outcomes a forecast
    made at ``start`` is checked against (the backtest).

    - ``churned``: ``churn_date`` in ``[start, churn_end)``, the label of :func:`build_labels`
      over a window that may be shorter than the horizon (one that has only partly passed);
    - ``revenue``: the sum of ``amount`` over ``[start, revenue_end)`` (refunds included, 0.0
      without a transaction), as :func:`revenue_between`;
    - ``bought``: at least one transaction with a positive amount in that window.

    Returns
    -------
    pl.LazyFrame
        ``customer_id``, ``churned`` (Boolean), ``revenue`` (Float64), ``bought`` (Boolean).
    """
    churn = pl.col("churn_date")
    day = pl.col("ts").dt.date()
    bought = (
        transactions.filter(
            (day >= pl.lit(start)) & (day < pl.lit(revenue_end)) & (pl.col("amount") > 0)
        )
        .select("customer_id")
        .unique()
        .with_columns(pl.lit(True).alias("bought"))
    )
    return (
        customers.select(
            "customer_id",
            (churn.is_not_null() & (churn >= pl.lit(start)) & (churn < pl.lit(churn_end))).alias(
                "churned"
            ),
        )
        .join(revenue_between(transactions, start, revenue_end), on="customer_id", how="left")
        .join(bought, on="customer_id", how="left")
        .select(
            "customer_id",
            "churned",
            pl.col("actual").fill_null(0.0).alias("revenue"),
            pl.col("bought").fill_null(False),
        )
    )
