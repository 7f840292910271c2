"""A sampled profile is the full profile's rows of the sampled customers, nothing else."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import features
from crm_engine.io import load_tables
from features import CustomerSample

AS_OF = dt.date(2025, 6, 1)


def test_sampled_rows_equal_the_full_profile(generated_operator: Path) -> None:
    tables = load_tables(generated_operator)
    full = features.build_profile(tables, AS_OF).collect()
    sample = CustomerSample(share=0.3, seed=5)
    part = features.build_profile(tables, AS_OF, sample=sample).collect()

    assert 0.25 * full.height < part.height < 0.35 * full.height
    assert_frame_equal(part, full.filter(sample.expr()))
    # influence sees the whole call graph: a sampled customer keeps contacts outside it
    assert part.get_column("n_contacts").sum() > 0.25 * full.get_column("n_contacts").sum()


def test_the_sample_depends_on_id_and_seed_only() -> None:
    ids = pl.DataFrame({"customer_id": list(range(10_000))})
    s = CustomerSample(share=0.1, seed=3)
    kept = ids.filter(s.expr()).get_column("customer_id")
    shuffled = ids.sample(fraction=1.0, shuffle=True, seed=1).filter(s.expr())
    assert sorted(shuffled.get_column("customer_id").to_list()) == kept.to_list()
    other = ids.filter(CustomerSample(share=0.1, seed=4).expr()).get_column("customer_id")
    assert kept.to_list() != other.to_list()
    assert 900 < kept.len() < 1_100


def test_bounded_sample_and_bad_shares() -> None:
    assert CustomerSample.bounded(1_000, 5_000) is None
    assert CustomerSample.bounded(10_000, 2_500, seed=2) == CustomerSample(share=0.25, seed=2)
    for share in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="share must be in"):
            CustomerSample(share=share)
    with pytest.raises(ValueError, match="max_customers"):
        CustomerSample.bounded(10, 0)


def test_a_narrower_sample_of_the_same_seed_lies_within_a_wider_one() -> None:
    """What lets a profile built for one sample serve a narrower one (the Spark backend's
    batches): its customers are all in the wider sample, and ``covering`` finds it."""
    ids = pl.DataFrame({"customer_id": list(range(20_000))})
    narrow, wide = CustomerSample(share=0.1, seed=0), CustomerSample(share=0.125, seed=0)
    other = CustomerSample(share=0.05, seed=1)
    kept = set(ids.filter(narrow.expr()).get_column("customer_id"))
    assert kept < set(ids.filter(wide.expr()).get_column("customer_id"))
    assert narrow.within(wide) and narrow.within(None) and not wide.within(narrow)
    assert not other.within(wide)  # another seed: other customers
    assert features.sample.covering([narrow, wide]) == wide
    assert features.sample.covering([wide, narrow, narrow]) == wide
    assert features.sample.covering([narrow, other]) is None  # everyone
    assert features.sample.covering([narrow, None]) is None
