"""Who the customer is: the population at ``as_of``, age band, descriptive dimensions, tenure."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

from crm_engine.config import age_band_labels

__all__ = [
    "CATEGORICAL_COLUMNS",
    "DESCRIPTIVE_COLUMNS",
    "UNKNOWN",
    "age_band_expr",
    "age_band_labels",
    "first_year_share_column",
    "population",
    "population_counts",
    "who_columns",
    "who_features",
]

UNKNOWN = "unknown"
CATEGORICAL_COLUMNS = ("gender", "occupation", "region", "area_type", "plan_type")
"""Text attributes of the customers table, normalised ('unknown' when missing)."""
DESCRIPTIVE_COLUMNS = ("age_band", *CATEGORICAL_COLUMNS)
"""Who the customer is: the profile's descriptive dimensions (see ``features.ColumnRole``)."""


def _signed_up(as_of: dt.date) -> pl.Expr:
    return pl.col("signup_date") < pl.lit(as_of)


def _not_churned(as_of: dt.date) -> pl.Expr:
    return pl.col("churn_date").is_null() | (pl.col("churn_date") >= pl.lit(as_of))


def population(customers: pl.LazyFrame, as_of: dt.date) -> pl.LazyFrame:
    """Customers still a customer at ``as_of``.

    A customer is in the population when ``signup_date < as_of`` and
    (``churn_date`` is null or ``churn_date >= as_of``): a churn on ``as_of`` or later has not
    been observed yet.
    """
    return customers.filter(_signed_up(as_of) & _not_churned(as_of))


def population_counts(customers: pl.LazyFrame, as_of: dt.date) -> pl.LazyFrame:
    """Why the customers table and the population at ``as_of`` differ, as one row of counts.

    ``customers`` (rows of the table), ``churned_before_as_of`` (signed up, but
    ``churn_date < as_of``) and ``not_yet_signed_up`` (``signup_date >= as_of``), all Int64:
    the rows :func:`population` leaves out, by the same predicates. Rows with no signup date
    are in neither group.
    """
    signed = _signed_up(as_of)
    return customers.select(
        pl.len().cast(pl.Int64).alias("customers"),
        (signed & ~_not_churned(as_of)).sum().cast(pl.Int64).alias("churned_before_as_of"),
        (~signed).sum().cast(pl.Int64).alias("not_yet_signed_up"),
    )


def age_band_expr(age: pl.Expr, cut_points: Sequence[int]) -> pl.Expr:
    """Age band of an integer age expression; null ages give ``"unknown"``."""
    labels = age_band_labels(cut_points)
    expr: pl.Expr = pl.lit(labels[-1])
    for cut, label in reversed(list(zip(cut_points, labels[:-1], strict=True))):
        expr = pl.when(age < cut).then(pl.lit(label)).otherwise(expr)
    return pl.when(age.is_null()).then(pl.lit(UNKNOWN)).otherwise(expr)


def _age_at(birth: pl.Expr, as_of: dt.date) -> pl.Expr:
    """Completed years between ``birth`` and ``as_of``; null when unknown or not yet born."""
    before_birthday = (birth.dt.month().cast(pl.Int64) * 100 + birth.dt.day().cast(pl.Int64)) > (
        as_of.month * 100 + as_of.day
    )
    age = (
        pl.lit(as_of.year, dtype=pl.Int64)
        - birth.dt.year().cast(pl.Int64)
        - before_birthday.cast(pl.Int64)
    )
    return pl.when(birth.is_null() | (age < 0)).then(None).otherwise(age).cast(pl.Int64)


def _category(name: str) -> pl.Expr:
    value = pl.col(name).cast(pl.String).str.strip_chars()
    return (
        pl.when(value.is_null() | (value == "")).then(pl.lit(UNKNOWN)).otherwise(value).alias(name)
    )


FIRST_YEAR_DAYS = 365
"""Tenure under which a customer is in their first year."""


def first_year_share_column(ahead_days: int) -> str:
    """Name of the share of the ``ahead_days`` after the cut still in the first year."""
    return f"first_year_share_{ahead_days}d"


def who_columns(id_dtype: pl.DataType = pl.Int64, ahead_days: int = 90) -> dict[str, pl.DataType]:
    """Declared output of :func:`who_features`."""
    return {
        "customer_id": id_dtype,
        "age": pl.Int64(),
        "age_band": pl.String(),
        "gender": pl.String(),
        "occupation": pl.String(),
        "region": pl.String(),
        "area_type": pl.String(),
        "plan_type": pl.String(),
        "tenure_days": pl.Int64(),
        "contract_days_left": pl.Int64(),
        "contract_months_left": pl.Int64(),
        first_year_share_column(ahead_days): pl.Float64(),
    }


def who_features(
    customers: pl.LazyFrame,
    as_of: dt.date,
    age_bands: Sequence[int] = (25, 35, 50, 65),
    ahead_days: int = 90,
) -> pl.LazyFrame:
    """The population at ``as_of`` with its descriptive columns; the base every group joins to.

    Parameters
    ----------
    customers
        The customers table cast to its contract.
    as_of
        First day not observed.
    age_bands
        Upper-exclusive cut points of the age bands.
    ahead_days
        Days after the cut that ``first_year_share_<ahead_days>d`` describes (the churn
        horizon: the label window).

    Returns
    -------
    pl.LazyFrame
        One row per customer of :func:`population`, columns of :func:`who_columns`.
        ``contract_days_left`` is the days from ``as_of`` to the end of a postpaid customer's
        minimum term (``contract_end_date``, optional in the customers table; negative once
        it has ended), null for prepaid customers and without a date;
        ``contract_months_left`` the calendar months from the month of ``as_of`` to the month
        the term ends in (0: it ends this month; negative: it has ended), null alike.
        ``first_year_share_<ahead_days>d`` is the share of the days ``[as_of, as_of +
        ahead_days)`` on which the customer's tenure is still under a year (1: the whole
        window, 0: none of it): newcomers leave more often, and the window may straddle the
        first anniversary.
    """
    age = _age_at(pl.col("birth_date"), as_of)
    tenure = (pl.lit(as_of) - pl.col("signup_date")).dt.total_days().cast(pl.Int64)
    # the minimum term is agreed at signup, so its end is known at as_of (prepaid: none)
    contract_left = contract_months = pl.lit(None, pl.Int64)
    if "contract_end_date" in customers.collect_schema():
        postpaid = pl.col("plan_type") == "postpaid"
        end = pl.col("contract_end_date")
        contract_left = pl.when(postpaid).then((end - pl.lit(as_of)).dt.total_days()).cast(pl.Int64)
        months = (end.dt.year().cast(pl.Int64) - as_of.year) * 12 + (
            end.dt.month().cast(pl.Int64) - as_of.month
        )
        contract_months = pl.when(postpaid).then(months).cast(pl.Int64)
    first_year = (pl.lit(FIRST_YEAR_DAYS) - tenure).clip(0, ahead_days) / ahead_days
    return population(customers, as_of).select(
        pl.col("customer_id"),
        age.alias("age"),
        age_band_expr(age, age_bands).alias("age_band"),
        *[_category(c) for c in CATEGORICAL_COLUMNS],
        tenure.alias("tenure_days"),
        contract_left.alias("contract_days_left"),
        contract_months.alias("contract_months_left"),
        first_year.cast(pl.Float64).alias(first_year_share_column(ahead_days)),
    )
