"""Spend levels and age bands."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_series_equal

from segmentation import add_bands, spend_cut_points, spend_level_expr


def test_tertiles_split_spend_in_thirds() -> None:
    df = pl.DataFrame({"revenue_365d": [float(x) for x in range(1, 301)]})
    cuts = spend_cut_points(df)
    levels = df.select(spend_level_expr(cuts))["spend_level"].value_counts().sort("spend_level")
    counts = dict(levels.iter_rows())
    assert counts == {"high": 100, "low": 100, "medium": 100}


def test_configured_cut_points_and_boundaries() -> None:
    df = pl.DataFrame({"revenue_365d": [None, -5.0, 100.0, 100.01, 500.0, 500.5]})
    cuts = spend_cut_points(df, [100.0, 500.0])
    assert cuts == (100.0, 500.0)
    out = df.select(spend_level_expr(cuts))["spend_level"]
    expected = pl.Series("spend_level", ["low", "low", "low", "medium", "medium", "high"])
    assert_series_equal(out, expected)


def test_bad_cut_points_and_missing_column_are_clear() -> None:
    df = pl.DataFrame({"revenue_365d": [1.0]})
    with pytest.raises(ValueError, match=r"two increasing numbers, got \[5\.0, 1\.0\]"):
        spend_cut_points(df, [5.0, 1.0])
    with pytest.raises(ValueError, match="no column 'revenue_365d'"):
        spend_cut_points(pl.DataFrame({"x": [1.0]}))


def test_add_bands_keeps_unknown_age_band_and_is_lazy() -> None:
    lf = pl.LazyFrame({"revenue_365d": [1.0, 2.0, 3.0], "age_band": ["<25", None, "unknown"]})
    out = add_bands(lf, (1.5, 2.5))
    assert isinstance(out, pl.LazyFrame)
    df = out.collect()
    assert df["age_band"].to_list() == ["<25", "unknown", "unknown"]
    assert df["spend_level"].to_list() == ["low", "medium", "high"]
