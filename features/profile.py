"""Profile assembly: the declared output schema and ``build_profile``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Literal

import polars as pl

from crm_engine.config import FeaturesConfig
from crm_engine.contracts import schema_difference
from crm_engine.io import DataError
from features.btyd import add_btyd, btyd_columns
from features.influence import add_influence, influence_columns
from features.labels import is_label
from features.network import add_network, network_columns
from features.sample import CustomerSample, restrict
from features.service import add_service, service_columns
from features.spend import add_spend, spend_columns
from features.surveys import add_surveys, surveys_columns
from features.usage import add_usage, usage_columns
from features.who import DESCRIPTIVE_COLUMNS, who_columns, who_features
from features.window import to_date

__all__ = [
    "PROFILE_CONTRACT",
    "PROFILE_GROUPS",
    "REQUIRED_TABLES",
    "ColumnRole",
    "ProfileAt",
    "ProfileSchemaError",
    "build_profile",
    "column_role",
    "model_features",
    "profile_groups",
    "profile_roles",
    "profile_schema",
]

PROFILE_CONTRACT = "crm.profile/v1"
REQUIRED_TABLES = ("customers", "transactions")

GroupSpec = tuple[str, dict[str, pl.DataType]]

ProfileAt = Callable[[dt.date, CustomerSample | None], pl.DataFrame]
"""The collected profile at a cut, of a sample's customers (None: everyone): how stages ask
for profiles (the pipeline's per-run cache, ``pipelines.profiles.ProfileCache``)."""


class ProfileSchemaError(RuntimeError):
    """The planned profile does not match its declared schema (a bug or an input type drift)."""


def profile_groups(
    cfg: FeaturesConfig | None = None, id_dtype: pl.DataType = pl.Int64
) -> dict[str, GroupSpec]:
    """Every feature group: name -> (table it needs, {column: dtype}), in output order.

    Column names that carry a window (``revenue_<w>d``, ``complaints_<w>d``,
    ``<kpi>_mean_<n>m``, ``churned_contacts_share_<d>d``, ``first_year_share_<h>d``) follow
    ``cfg``; the defaults give :data:`PROFILE_GROUPS`.
    """
    cfg = cfg or FeaturesConfig()
    return {
        "who": ("customers", who_columns(id_dtype, cfg.ahead_days)),
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


ColumnRole = Literal["id", "descriptive", "numeric", "categorical", "label"]
"""What a column is for.

``id``: the key, never a feature. ``descriptive``: who the customer is (age band, gender,
occupation, region, area type, plan type): a dimension marketers filter on, carried into the
scores, and a categorical model feature. ``numeric``: a numeric (or boolean 0/1) model feature.
``categorical``: any other text model feature (extra columns of the customers table).
``label``: looks forward from the cut (churn within the horizon, next loyalty class): never a
feature.
"""

#: Columns that may never be features although they can ride along in a frame: the cut date and
#: the dates of the customers table that describe the customer's future or identify them.
_NEVER_FEATURES = frozenset({"as_of", "churn_date", "signup_date", "birth_date"})


def column_role(name: str, dtype: pl.DataType) -> ColumnRole:
    """The role of one column of a profile (or a profile joined with labels and extras).

    Roles follow the declarations: the key, the label columns of :mod:`features.labels`, the
    descriptive columns of :mod:`features.who`; every other column is a feature, numeric by
    dtype (booleans count as numeric) and categorical otherwise.
    """
    if name == "customer_id":
        return "id"
    if is_label(name) or name in _NEVER_FEATURES:
        return "label"
    if name in DESCRIPTIVE_COLUMNS:
        return "descriptive"
    if dtype.is_numeric() or dtype == pl.Boolean:
        return "numeric"
    return "categorical"


def profile_roles(
    cfg: FeaturesConfig | None = None,
    tables: set[str] | frozenset[str] | None = None,
    id_dtype: pl.DataType = pl.Int64,
) -> dict[str, ColumnRole]:
    """Role of every column of :func:`profile_schema` (same arguments), in profile order."""
    return {
        name: column_role(name, dtype)
        for name, dtype in profile_schema(cfg, tables, id_dtype).items()
    }


def model_features(schema: pl.Schema | dict[str, pl.DataType]) -> tuple[list[str], list[str]]:
    """``(numeric, categorical)`` feature columns of a frame schema, in schema order.

    Descriptive columns are categorical features; ids and labels are never features. Every
    model derives its feature list here, from the profile's declared schema, so a profile
    built with other windows (``network_months = 6``) feeds every model all its columns.
    """
    numeric: list[str] = []
    categorical: list[str] = []
    for name, dtype in schema.items():
        role = column_role(name, dtype)
        if role == "numeric":
            numeric.append(name)
        elif role in ("descriptive", "categorical"):
            categorical.append(name)
    return numeric, categorical


def _check_schema(lf: pl.LazyFrame, expected: pl.Schema) -> None:
    difference = schema_difference(lf.collect_schema(), expected)
    if difference is not None:
        raise ProfileSchemaError(f"profile plan does not match its declared schema: {difference}")


FLOAT_SIG_FIGS = 9
"""Significant figures kept in every Float64 profile column (reproducibility, see below)."""


def build_profile(
    tables: dict[str, pl.LazyFrame],
    as_of: dt.date | str,
    cfg: FeaturesConfig | None = None,
    sample: CustomerSample | None = None,
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
    sample
        Only these customers' rows (None: everyone). Every customer-keyed table is filtered
        before its group is computed; the call graph is not (a contact outside the sample
        still counts), so a sampled customer's row equals their row in the full profile.

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
    id_dtype = customers.collect_schema()["customer_id"]
    keyed = restrict(tables, sample)

    profile = who_features(keyed["customers"], as_of, cfg.age_bands, cfg.ahead_days)
    profile = add_spend(profile, keyed["transactions"], as_of, cfg)
    profile = add_btyd(profile, keyed["transactions"], as_of)
    if "usage" in tables:
        profile = add_usage(profile, keyed["usage"], as_of)
    if "network" in tables:
        profile = add_network(profile, keyed["network"], as_of, cfg)
    if "interactions" in tables:
        profile = add_service(profile, keyed["interactions"], as_of, cfg)
    if "surveys" in tables:
        profile = add_surveys(profile, keyed["surveys"], as_of)
    if "calls" in tables:
        # The whole graph (and every customer's region and churn date) at every sample.
        profile = add_influence(profile, tables["calls"], customers, as_of, cfg)

    expected = profile_schema(cfg, frozenset(tables), id_dtype)
    profile = finish_profile(profile, expected)
    _check_schema(profile, expected)
    return profile


def finish_profile(profile: pl.LazyFrame, expected: pl.Schema) -> pl.LazyFrame:
    """The declared column order, floats to :data:`FLOAT_SIG_FIGS`, rows by ``customer_id``:
    the last step of every backend's profile.

    Parallel float sums are not bit-reproducible (their order follows the engine's morsels,
    which follow the file layout and thread timing). Nine significant figures are far more
    than any feature means, and make the same data give the same profile, bit for bit.
    """
    floats = [name for name, dtype in expected.items() if dtype == pl.Float64]
    return (
        profile.select(list(expected))
        .with_columns(pl.col(name).round_sig_figs(FLOAT_SIG_FIGS) for name in floats)
        .sort("customer_id")
    )
