"""Stacked training snapshots: the cuts, the rows, and nothing learnt after the validation cut."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from polars.testing import assert_frame_equal

import features
from churn.frames import CUT_COLUMN, build_training_frames, surveyed_snapshots, training_cuts
from churn.training import learning_curve_points
from crm_engine.config import FeaturesConfig
from features import PointInTime
from tests.features._tiny import lazy
from tests.features.test_point_in_time import BASE, mutated

H = 30
STEP = 30


def test_training_cuts_step_back_from_two_horizons() -> None:
    cuts = training_cuts(dt.date(2025, 1, 1), 90, snapshots=3, step_days=30)
    assert cuts.valid == dt.date(2024, 10, 3)
    assert cuts.train == (dt.date(2024, 7, 5), dt.date(2024, 6, 5), dt.date(2024, 5, 6))
    # every training label window [cut, cut + h) ends on or before the validation cut
    assert all(c + dt.timedelta(days=90) <= cuts.valid for c in cuts.train)
    assert training_cuts(dt.date(2025, 1, 1), 90).train == (dt.date(2024, 7, 5),)
    with pytest.raises(ValueError, match="snapshots=0"):
        training_cuts(dt.date(2025, 1, 1), 90, snapshots=0)


def test_the_learning_curve_halves_the_kept_model_s_snapshots() -> None:
    # the kept model's n is its last point; the others halve it down to one cut
    assert learning_curve_points(1) == []
    assert learning_curve_points(3) == [1]
    assert learning_curve_points(6) == [1, 3]
    assert learning_curve_points(8) == [1, 2, 4]
    assert learning_curve_points(12) == [1, 3, 6]


def _frames(tables: dict[str, pl.DataFrame], valid_cut: dt.date) -> pl.DataFrame:
    """The stacked training frame of a run whose validation cut is ``valid_cut``."""
    as_of = valid_cut + dt.timedelta(days=H)
    at = PointInTime.of(lazy(tables), as_of)
    train, _ = build_training_frames(at, FeaturesConfig(), [], H, snapshots=3, step_days=STEP)
    return train


def test_each_snapshot_is_the_profile_and_labels_at_its_cut() -> None:
    as_of = dt.date(2024, 1, 31)
    cuts = training_cuts(as_of, H, 3, STEP)
    train = _frames(BASE, cuts.valid)
    assert train[CUT_COLUMN].unique(maintain_order=True).to_list() == list(cuts.train)
    for cut in cuts.train:
        rows = train.filter(pl.col(CUT_COLUMN) == cut).drop(CUT_COLUMN)
        profile = features.build_profile(lazy(BASE), cut).collect()
        labels = features.build_labels(lazy(BASE), cut, H).collect()
        assert_frame_equal(rows.select(profile.columns), profile)
        expected = profile.select("customer_id").join(labels, on="customer_id", how="left")
        assert_frame_equal(
            rows.select("customer_id", f"churned_within_{H}d"),
            expected.select("customer_id", f"churned_within_{H}d"),
        )
    # a customer present at several cuts has one row per cut
    assert train.group_by("customer_id").len()["len"].max() == len(cuts.train)


_BASELINES: dict[dt.date, pl.DataFrame] = {}


@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=mutated())
def test_rows_on_or_after_the_validation_cut_never_change_the_training_data(
    case: tuple[dt.date, dict[str, pl.DataFrame]],
) -> None:
    # Every row dated on or after the latest training label window's end (the validation
    # cut) is deleted, changed or added: the stacked training frame, labels included, must
    # not move, so no snapshot learns anything the validation cut is judged on.
    valid_cut, tables = case
    if valid_cut not in _BASELINES:
        _BASELINES[valid_cut] = _frames(BASE, valid_cut)
    assert_frame_equal(_frames(tables, valid_cut), _BASELINES[valid_cut])


def test_rare_values_count_customers_not_snapshot_rows() -> None:
    # 4 customers with a rare occupation, each in 3 stacked snapshots: 12 rows but 4 people,
    # below a threshold of 10 customers, so the value must be pooled (no model names it).
    from features import OTHER, frequent_values, pool_rare

    ids = list(range(1, 31))
    occupation = ["rare"] * 4 + ["common"] * 26
    one_cut = pl.DataFrame({"customer_id": ids, "occupation": occupation})
    stacked = pl.concat([one_cut] * 3)
    keep = frequent_values(stacked, ["occupation"], 10)
    assert keep == {"occupation": frozenset({"common"})}
    pooled = pool_rare(stacked, keep)
    assert pooled.filter(pl.col("customer_id") <= 4)["occupation"].unique().to_list() == [OTHER]
    # without a key, rows are what there is to count
    assert frequent_values(stacked.drop("customer_id"), ["occupation"], 10) == {
        "occupation": frozenset({"common", "rare"})
    }


def test_snapshots_before_the_first_purchase_are_a_data_error() -> None:
    # enough cuts a month apart reach back before the first transaction: those snapshots
    # would have no history, so the run stops and names the table, column, first date, rows.
    from crm_engine.io import DataError

    first = BASE["transactions"]["ts"].min().date()
    n_rows = BASE["transactions"].height
    as_of = dt.date(2024, 1, 31)
    too_many = (as_of - first).days // STEP  # the earliest cut falls before ``first``
    assert training_cuts(as_of, H, too_many, STEP).train[-1] <= first
    at = PointInTime.of(lazy(BASE), as_of)
    with pytest.raises(DataError) as err:
        build_training_frames(at, FeaturesConfig(), [], H, snapshots=too_many)
    msg = str(err.value)
    assert "table transactions" in msg and "column ts" in msg
    assert str(first) in msg and f"{n_rows:,} rows" in msg
    assert "churn.training_snapshots" in msg
    # as many cuts as the history allows are fine
    earliest_ok = too_many - 2
    train, _ = build_training_frames(at, FeaturesConfig(), [], H, snapshots=earliest_ok)
    assert train[CUT_COLUMN].n_unique() == earliest_ok


def test_the_loyalty_model_s_earlier_snapshots_are_surveyed_rows_while_history_allows() -> None:
    """The cuts after the churn model's three, a step apart, keep only surveyed customers' rows,
    each the labelled profile at its cut; cuts before the first transaction are left out (not
    an error: the loyalty model then learns from fewer)."""
    tables = lazy(BASE)
    as_of = dt.date(2024, 1, 31)
    at = PointInTime.of(tables, as_of)
    start = at.start
    # the cuts after the first transaction
    fit = sum(c > start.first_day for c in training_cuts(as_of, H, 100, STEP).train)
    wanted = fit + 3
    cuts = training_cuts(as_of, H, wanted, STEP).train
    assert cuts[fit - 1] > start.first_day >= cuts[fit]
    earlier = surveyed_snapshots(at, FeaturesConfig(), [], H, 3, wanted, STEP)
    assert earlier is not None
    present = earlier[CUT_COLUMN].unique(maintain_order=True).to_list()
    assert present == [c for c in cuts[3:fit] if c in present] and len(present) >= 3
    assert earlier["loyalty_class"].null_count() == 0
    for cut in cuts[3:fit]:
        rows = earlier.filter(pl.col(CUT_COLUMN) == cut).drop(CUT_COLUMN)
        profile = features.build_profile(tables, cut).collect()
        labels = features.build_labels(tables, cut, H).collect().drop_nulls("loyalty_class")
        assert rows["customer_id"].to_list() == [
            i for i in profile["customer_id"] if i in set(labels["customer_id"])
        ]
        assert_frame_equal(
            rows.select("customer_id", "loyalty_class"),
            labels.select("customer_id", "loyalty_class").sort("customer_id"),
            check_row_order=False,
        )
        assert_frame_equal(
            rows.select(profile.columns),
            profile.filter(pl.col("customer_id").is_in(rows["customer_id"].implode())),
        )
    # no cut left after the first transaction, or none asked beyond the churn model's: None
    assert surveyed_snapshots(at, FeaturesConfig(), [], H, fit, fit + 2, STEP) is None
    assert surveyed_snapshots(at, FeaturesConfig(), [], H, 3, 3, STEP) is None
