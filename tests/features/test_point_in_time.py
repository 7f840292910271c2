"""Point-in-time property: rows dated on or after ``as_of`` never change the profile."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import features
from crm_engine.contracts import INPUT_TABLES
from features.window import last_complete_month, month_offset
from tests.features._tiny import lazy, random_frames, tiny_frames

BASE = {
    name: pl.concat([tiny, random_frames(seed=3)[name]]) for name, tiny in tiny_frames().items()
}
AS_OFS = [dt.date(2024, 1, 1), dt.date(2024, 1, 15), dt.date(2023, 11, 20)]
KEYS = [1, 2, 3, 4, 5, 6, 99, 1003, 1010, 1017]
_PROFILES: dict[dt.date, pl.DataFrame] = {}


def _baseline(as_of: dt.date) -> pl.DataFrame:
    if as_of not in _PROFILES:
        _PROFILES[as_of] = features.build_profile(lazy(BASE), as_of).collect(engine="streaming")
    return _PROFILES[as_of]


def _is_future(table: str, as_of: dt.date) -> pl.Expr:
    """Rows not (completely) observed at ``as_of``."""
    contract = INPUT_TABLES[table]
    col = pl.col(contract.time_column)
    if contract.monthly:
        return col > pl.lit(last_complete_month(as_of))
    if isinstance(contract.schema[contract.time_column], pl.Datetime):
        return col >= pl.lit(dt.datetime.combine(as_of, dt.time()))
    return col >= pl.lit(as_of)


def _future_time(table: str, as_of: dt.date) -> st.SearchStrategy[Any]:
    contract = INPUT_TABLES[table]
    if contract.monthly:
        first = as_of.replace(day=1)
        return st.integers(0, 14).map(lambda k: month_offset(first, k))
    if isinstance(contract.schema[contract.time_column], pl.Datetime):
        lo = dt.datetime.combine(as_of, dt.time())
        return st.datetimes(min_value=lo, max_value=lo + dt.timedelta(days=400))
    return st.dates(min_value=as_of, max_value=as_of + dt.timedelta(days=400))


def _value(dtype: pl.DataType, nullable: bool) -> st.SearchStrategy[Any]:
    if dtype == pl.Float64:
        s: st.SearchStrategy[Any] = st.floats(-100, 1000, allow_nan=False)
    elif dtype == pl.Int64:
        s = st.integers(0, 10)
    elif dtype == pl.String:
        s = st.sampled_from(["north", "south", "complaint", "inquiry", "topup", "network", ""])
    elif dtype == pl.Date:
        s = st.dates(min_value=dt.date(2019, 1, 1), max_value=dt.date(2025, 6, 1))
    else:
        s = st.datetimes(min_value=dt.datetime(2019, 1, 1), max_value=dt.datetime(2025, 6, 1))
    return st.one_of(st.none(), s) if nullable else s


def _row(draw: st.DrawFn, table: str, as_of: dt.date, keep: dict[str, Any]) -> dict[str, Any]:
    contract = INPUT_TABLES[table]
    row = dict(keep)
    for col, dtype in contract.schema.items():
        if col in row:
            continue
        if col == contract.time_column:
            row[col] = draw(_future_time(table, as_of))
        elif col in contract.keys:
            row[col] = draw(st.sampled_from(KEYS))
        else:
            row[col] = draw(_value(dtype, col in contract.nullable))
    return row


@st.composite
def mutated(draw: st.DrawFn) -> tuple[dt.date, dict[str, pl.DataFrame]]:
    """Delete, change and add rows dated on or after as_of in every table."""
    as_of = draw(st.sampled_from(AS_OFS))
    out: dict[str, pl.DataFrame] = {}
    for table, df in BASE.items():
        contract = INPUT_TABLES[table]
        future = _is_future(table, as_of)
        past, rows = df.filter(~future), df.filter(future).to_dicts()
        new_rows: list[dict[str, Any]] = []
        for row in rows:
            action = draw(st.sampled_from(["keep", "delete", "change"]))
            if action == "keep":
                new_rows.append(row)
            elif action == "change":
                keep = {"customer_id": row["customer_id"]} if table == "customers" else {}
                new_rows.append(_row(draw, table, as_of, keep))
        n_new = draw(st.integers(0, 3))
        for i in range(n_new):
            keep = {"customer_id": 500 + i} if table == "customers" else {}
            new_rows.append(_row(draw, table, as_of, keep))
        if table == "customers":
            # A churn on or after as_of is not known yet: move it around or drop it.
            churn = pl.col("churn_date")
            unknown = churn.is_null() | (churn >= as_of)
            n_unknown = past.filter(unknown).height
            dates = draw(
                st.lists(
                    st.one_of(st.none(), st.dates(as_of, as_of + dt.timedelta(days=300))),
                    min_size=n_unknown,
                    max_size=n_unknown,
                )
            )
            past = pl.concat(
                [
                    past.filter(~unknown),
                    past.filter(unknown).with_columns(
                        pl.Series("churn_date", dates, dtype=pl.Date)
                    ),
                ]
            )
        if table == "interactions":
            # Tickets opened before as_of but not closed before it: closing is future news.
            closed = pl.col("closed_at")
            as_of_ts = dt.datetime.combine(as_of, dt.time())
            pending = closed.is_null() | (closed >= as_of_ts)
            n_pending = past.filter(pending).height
            close_at = draw(
                st.lists(
                    st.one_of(st.none(), st.datetimes(as_of_ts, as_of_ts + dt.timedelta(days=60))),
                    min_size=n_pending,
                    max_size=n_pending,
                )
            )
            sat = draw(st.lists(st.integers(1, 5), min_size=n_pending, max_size=n_pending))
            past = pl.concat(
                [
                    past.filter(~pending),
                    past.filter(pending).with_columns(
                        pl.Series("closed_at", close_at, dtype=contract.schema["closed_at"]),
                        pl.Series("satisfaction", sat, dtype=pl.Int64),
                    ),
                ]
            )
        schema = contract.polars_schema()
        added = pl.DataFrame(new_rows, schema=schema, orient="row")
        out[table] = pl.concat([past, added]).sample(fraction=1.0, shuffle=True, seed=0)
    return as_of, out


@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=mutated())
def test_future_rows_never_change_the_profile(
    case: tuple[dt.date, dict[str, pl.DataFrame]],
) -> None:
    as_of, frames = case
    profile = features.build_profile(lazy(frames), as_of).collect(engine="streaming")
    assert_frame_equal(profile, _baseline(as_of))


def test_future_rows_do_change_the_labels() -> None:
    """Sanity check of the property test's reach: the labels do look at those rows."""
    frames = dict(BASE)
    as_of = dt.date(2024, 1, 1)
    before = features.build_labels(lazy(frames), as_of, 90).collect()
    frames["customers"] = BASE["customers"].with_columns(
        pl.when(pl.col("customer_id") == 1)
        .then(pl.lit(dt.date(2024, 2, 1)))
        .otherwise(pl.col("churn_date"))
        .alias("churn_date")
    )
    after = features.build_labels(lazy(frames), as_of, 90).collect()
    assert before.filter(pl.col("customer_id") == 1)["churned_within_90d"].item() is False
    assert after.filter(pl.col("customer_id") == 1)["churned_within_90d"].item() is True


HISTORY_COLUMNS = ("complaint_rate_730d", "nps_mean")
"""Columns that read a customer's whole history (up to two years): the easiest to leak into."""


def _history(frames: dict[str, pl.DataFrame], as_of: dt.date) -> pl.DataFrame:
    profile = features.build_profile(lazy(frames), as_of).collect(engine="streaming")
    return profile.select("customer_id", *HISTORY_COLUMNS)


def test_history_columns_ignore_rows_on_or_after_as_of() -> None:
    """Complaints and survey answers on ``as_of`` and later leave the history columns as they
    were; the same rows a day earlier move them (so the check can fail)."""
    as_of = dt.date(2024, 1, 1)
    frames = tiny_frames()
    before = _history(frames, as_of)

    def plus(day: dt.datetime) -> dict[str, pl.DataFrame]:
        complaints = pl.DataFrame(
            [(c, day, None, "app", "complaint", "network", None) for c in (1, 2, 5)],
            schema=INPUT_TABLES["interactions"].polars_schema(),
            orient="row",
        )
        answers = pl.DataFrame(
            [(c, day, 0, 1) for c in (1, 2, 5)],
            schema=INPUT_TABLES["surveys"].polars_schema(),
            orient="row",
        )
        return {
            **frames,
            "interactions": pl.concat([frames["interactions"], complaints]),
            "surveys": pl.concat([frames["surveys"], answers]),
        }

    at = dt.datetime.combine(as_of, dt.time())
    for day in (at, at + dt.timedelta(hours=12), at + dt.timedelta(days=200)):
        assert_frame_equal(_history(plus(day), as_of), before)
    earlier = _history(plus(at - dt.timedelta(seconds=1)), as_of)
    for column in HISTORY_COLUMNS:
        assert (earlier[column].fill_null(-1.0) != before[column].fill_null(-1.0)).all(), column
