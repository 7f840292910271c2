"""Profile assembly: the declared output schema and ``build_profile``."""

from __future__ import annotations

import datetime as dt

import polars as pl

from crm_engine.config import FeaturesConfig
from crm_engine.io import DataError
from features.btyd import add_btyd, btyd_columns
from features.influence import add_influence, influence_columns
from features.network import add_network, network_columns
from features.service import add_service, service_columns
from features.spend import add_spend, spend_columns
from features.surveys import add_surveys, surveys_columns
from features.usage import add_usage, usage_columns
from features.who import who_columns, who_features
from features.window import to_date

__all__ = [
    "PROFILE_CONTRACT",
    "PROFILE_GROUPS",
    "REQUIRED_TABLES",
    "ProfileSchemaError",
    "build_profile",
    "profile_groups",
    "profile_schema",
]

PROFILE_CONTRACT = "crm.profile/v1"
REQUIRED_TABLES = ("customers", "transactions")

GroupSpec = tuple[str, dict[str, pl.DataType]]


class ProfileSchemaError(RuntimeError):
    """The planned profile does not match its declared schema (a bug or an input type drift)."""


def profile_groups(
    cfg: FeaturesConfig | None = None, id_dtype: pl.DataType = pl.Int64
) -> dict[str, GroupSpec]:
    """Every feature group: name -> (table it needs, {column: dtype}), in output order.

    Column names that carry a window (``revenue_<w>d``, ``complaints_<w>d``,
    ``<kpi>_mean_<n>m``, ``churned_contacts_share_<d>d``) follow ``cfg``; the defaults give
    :data:`PROFILE_GROUPS`.
    """
    cfg = cfg or FeaturesConfig()
    return {
        "who": ("customers", who_columns(id_dtype)),
        "spend": ("transactions", spend_columns(cfg)),
        "btyd": ("transactions", btyd_columns()),
        "usage": ("usage", usage_columns()),
        "network": ("network", network_columns(cfg)),
        "service": ("interactions", service_columns(cfg)),
        "surveys": ("surveys", surveys_columns()),
        "influence": ("calls", influence_columns(cfg)),
    }


PROFILE_GROUPS: dict[str, GroupSpec] = profile_groups()


def profile_schema(
    cfg: FeaturesConfig | None = None,
    tables: set[str] | frozenset[str] | None = None,
    id_dtype: pl.DataType = pl.Int64,
) -> pl.Schema:
    """The profile columns produced when ``tables`` (default: all) are present."""
    columns: dict[str, pl.DataType] = {}
    for table, cols in profile_groups(cfg, id_dtype).values():
        if tables is None or table in tables:
            columns.update(cols)
    return pl.Schema(columns)


def _check_schema(lf: pl.LazyFrame, expected: pl.Schema) -> None:
    actual = lf.collect_schema()
    if actual == expected:
        return
    missing = [c for c in expected if c not in actual]
    extra = [c for c in actual if c not in expected]
    wrong = [
        f"{c}: expected {expected[c]}, planned {actual[c]}"
        for c in expected
        if c in actual and actual[c] != expected[c]
    ]
    raise ProfileSchemaError(
        "profile plan does not match its declared schema: "
        f"missing={missing}, unexpected={extra}, wrong types={wrong}"
    )


FLOAT_SIG_FIGS = 9
"""Significant figures kept in every Float64 profile column (reproducibility, see below)."""


def build_profile(
    tables: dict[str, pl.LazyFrame],
    as_of: dt.date | str,
    cfg: FeaturesConfig | None = None,
) -> pl.LazyFrame:
    """The point-in-time customer profile at ``as_of``, as a lazy plan (nothing is read).

    One row per customer still a customer at ``as_of`` (``signup_date < as_of`` and
    ``churn_date`` null or ``>= as_of``), sorted by ``customer_id``. Only rows dated before
    ``as_of`` are seen (monthly tables: months ending on or before ``as_of``). Each group of
    :data:`PROFILE_GROUPS` is a pure ``LazyFrame -> LazyFrame`` stage left-joined on
    ``customer_id``; a group whose optional table is absent is left out.

    Parameters
    ----------
    tables
        Table name -> LazyFrame cast to its contract (``crm_engine.io.load_tables``).
        ``customers`` and ``transactions`` are required.
    as_of
        First day not observed (a date or an ISO string).
    cfg
        Feature windows and options; the defaults work on the demo data.

    Returns
    -------
    pl.LazyFrame
        Columns of :func:`profile_schema` for the tables present, checked against the
        declaration when the plan is built.

    Raises
    ------
    DataError
        When a required table is missing.
    ProfileSchemaError
        When the plan's schema differs from the declaration.
    """
    missing = [t for t in REQUIRED_TABLES if t not in tables]
    if missing:
        raise DataError(
            f"build_profile needs the tables {list(REQUIRED_TABLES)}; missing: {missing}"
        )
    cfg = cfg or FeaturesConfig()
    as_of = to_date(as_of)
    customers = tables["customers"]
    transactions = tables["transactions"]
    id_dtype = customers.collect_schema()["customer_id"]

    profile = who_features(customers, as_of, cfg.age_bands)
    profile = add_spend(profile, transactions, as_of, cfg)
    profile = add_btyd(profile, transactions, as_of)
    if "usage" in tables:
        profile = add_usage(profile, tables["usage"], as_of)
    if "network" in tables:
        profile = add_network(profile, tables["network"], as_of, cfg)
    if "interactions" in tables:
        profile = add_service(profile, tables["interactions"], as_of, cfg)
    if "surveys" in tables:
        profile = add_surveys(profile, tables["surveys"], as_of)
    if "calls" in tables:
        profile = add_influence(profile, tables["calls"], customers, as_of, cfg)

    expected = profile_schema(cfg, frozenset(tables), id_dtype)
    # Parallel float sums are not bit-reproducible (their order follows the engine's morsels,
    # which follow the file layout and thread timing). Nine significant figures are far more
    # than any feature means, and make the same data give the same profile, bit for bit.
    floats = [name for name, dtype in expected.items() if dtype == pl.Float64]
    profile = (
        profile.select(list(expected))
        .with_columns(pl.col(name).round_sig_figs(FLOAT_SIG_FIGS) for name in floats)
        .sort("customer_id")
    )
    _check_schema(profile, expected)
    return profile
