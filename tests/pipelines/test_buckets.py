"""The bucketed pass: profiles built bucket by bucket equal the profile of the whole input."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from crm_engine.config import EngineConfig, FeaturesConfig
from crm_engine.io import DataError, load_tables
from features import build_profile
from features.sample import (
    SAMPLE_BUCKETS,
    CustomerSample,
    bucket_expr,
    buckets_holding,
    restrict,
)
from pipelines.buckets import (
    LocalProfiles,
    bucket_count,
    bucketed_profile,
    merge_sorted_parts,
    split_tables,
    write_bucketed_profile,
)

CUT = dt.date(2024, 10, 1)


@pytest.fixture(scope="module")
def tables(generated_operator: Path) -> dict[str, pl.LazyFrame]:
    return load_tables(generated_operator)


@pytest.mark.parametrize("buckets", [1, 3, 7])
def test_bucketed_profiles_equal_the_whole_profile(
    tables: dict[str, pl.LazyFrame], tmp_path: Path, buckets: int
) -> None:
    cfg = FeaturesConfig()
    whole = build_profile(tables, CUT, cfg).collect()
    split = split_tables(tables, tmp_path / "buckets", buckets)
    # every keyed table is split by customer, calls by pair
    assert sorted(split.schemas) == sorted(n for n in tables if n != "calls")
    rows = {
        name: sum(split.tables(b)[name].select(pl.len()).collect().item() for b in range(buckets))
        for name in split.schemas
    }
    rows["calls"] = sum(p.select(pl.len()).collect().item() for p in split.calls_parts())
    assert rows == {n: tables[n].select(pl.len()).collect().item() for n in tables}
    seen: list[int] = []
    profile = bucketed_profile(split, tables, CUT, cfg, on_bucket=lambda i, n: seen.append(i))
    assert seen == list(range(1, buckets + 1))
    assert_frame_equal(profile, whole)  # exact: the same Polars functions per customer
    # written bucket by bucket and merged (the run's spill): the same frame, in id order
    path = tmp_path / "spill" / "profile.parquet"
    path.parent.mkdir()
    assert write_bucketed_profile(split, tables, CUT, cfg, path) == whole.height
    assert_frame_equal(pl.read_parquet(path), whole)
    assert [f.name for f in path.parent.iterdir()] == ["profile.parquet"]  # parts removed


def test_merging_sorted_parts_is_bounded_by_the_slice(tmp_path: Path) -> None:
    """Parts sorted by a unique key merge into one sorted file, a slice of keys at a time;
    with no parts, an empty file of the schema."""
    frame = pl.DataFrame({"customer_id": range(1000), "x": [i * 0.5 for i in range(1000)]})
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=1)
    files = []
    for i, part in enumerate(shuffled.slice(k, 250) for k in range(0, 1000, 250)):
        files.append(tmp_path / f"part-{i}.parquet")
        part.sort("customer_id").write_parquet(files[-1], row_group_size=16)
    out = tmp_path / "merged.parquet"
    assert merge_sorted_parts(files, "customer_id", out, frame.schema, rows=97) == 1000
    assert_frame_equal(pl.read_parquet(out), frame)
    assert pq.ParquetFile(out).metadata.num_row_groups == 11  # 1000 keys, 97 at a time
    text = frame.with_columns(pl.format("c{}", "customer_id").alias("customer_id")).sort(
        "customer_id"
    )
    text.slice(0, 600).write_parquet(files[0], row_group_size=16)  # text keys: literals
    text.slice(600).write_parquet(files[1], row_group_size=16)
    assert merge_sorted_parts(files[:2], "customer_id", out, text.schema, rows=97) == 1000
    assert_frame_equal(pl.read_parquet(out), text)
    empty = tmp_path / "empty.parquet"
    assert merge_sorted_parts([], "customer_id", empty, frame.schema) == 0
    assert_frame_equal(pl.read_parquet(empty), frame.clear())


def test_a_sampled_profile_reads_only_its_buckets(
    tables: dict[str, pl.LazyFrame], tmp_path: Path
) -> None:
    cfg = FeaturesConfig()
    sample = CustomerSample(share=0.2)
    split = split_tables(tables, tmp_path / "buckets", 7)
    assert buckets_holding(sample, 7) == range(2)
    for b in range(2, 7):  # a bucket the sample does not need is never read
        for name in split.schemas:
            for f in (split.directory / name / f"_bucket={b}").glob("*.parquet"):
                f.unlink()
    sampled = bucketed_profile(split, tables, CUT, cfg, sample)
    assert_frame_equal(sampled, build_profile(tables, CUT, cfg, sample).collect())
    assert 0 < sampled.height < build_profile(tables, CUT, cfg).collect().height


def test_a_sample_s_rows_are_read_from_its_buckets(
    tables: dict[str, pl.LazyFrame], tmp_path: Path
) -> None:
    """What a fit on a sample reads of the tables (``PointInTime.sample_tables``): the keyed
    tables' rows of its customers, from the buckets holding it only, and the calls they made
    or received (``calls`` is split by pair): the rows filtering the whole tables gives.
    Unsplit, the tables filtered."""
    sample = CustomerSample(share=0.2)
    split = split_tables(tables, tmp_path / "buckets", 7)
    for b in range(2, 7):  # buckets the sample does not need: never read
        for name in split.schemas:
            for f in (split.directory / name / f"_bucket={b}").glob("*.parquet"):
                f.unlink()
    expected = restrict(tables, sample)
    for builder in (LocalProfiles(CUT, split), LocalProfiles(CUT)):
        got = builder.sampled(tables, sample)
        assert got.keys() == tables.keys()
        for name in tables:
            rows, want = got[name].collect(), expected[name].collect()
            assert rows.schema == want.schema
            assert_frame_equal(rows.sort(rows.columns), want.sort(want.columns))
        for name in ("transactions", "calls"):
            assert 0 < got[name].select(pl.len()).collect().item()
        assert (
            got["calls"].select(pl.len()).collect().item()
            < tables["calls"].select(pl.len()).collect().item()
        )


def test_buckets_hold_every_sample() -> None:
    ids = pl.DataFrame({"customer_id": range(50_000)})
    for k in (1, 2, 3, 10, 64):
        b = ids.select(bucket_expr(k)).to_series()
        assert (b.min(), b.max()) == (0, k - 1)
        for share in (1 / SAMPLE_BUCKETS, 0.01, 0.25, 0.5, 1.0):
            s = CustomerSample(share=share)
            inside = b.filter(ids.select(s.expr()).to_series())
            assert inside.max() is None or inside.max() < len(buckets_holding(s, k))
    # another seed's sample is spread over every bucket
    assert buckets_holding(CustomerSample(share=0.1, seed=3), 5) == range(5)


def test_bucket_count() -> None:
    assert bucket_count(10_000_000, EngineConfig()) == 40  # 250,000 customers a bucket
    assert bucket_count(250_000, EngineConfig()) == 1
    assert bucket_count(250_001, EngineConfig()) == 2
    assert bucket_count(5, EngineConfig(buckets=4)) == 4
    assert bucket_count(2_500, EngineConfig(bucket_customers=1_000)) == 3


def test_a_split_that_cannot_write_is_one_line(
    tables: dict[str, pl.LazyFrame], tmp_path: Path
) -> None:
    # a file where the scratch directory should be: the write fails as a full disk would
    blocked = tmp_path / "blocked"
    blocked.write_text("not a directory")
    with pytest.raises(DataError, match=r"^splitting customers into 3 buckets under .*blocked"):
        split_tables(tables, blocked / "buckets", 3)


def _direct_influence(tables: dict[str, pl.LazyFrame], cut: dt.date) -> pl.DataFrame:
    """The call-graph columns straight from the edge list, by joins (the reference)."""
    from features.influence import pagerank, undirected_edges

    edges = undirected_edges(tables["calls"], cut).collect()
    known = (
        tables["customers"]
        .filter(pl.col("signup_date") < cut)
        .select("customer_id", "region", "churn_date")
        .collect()
    )
    contacts = known.rename({"customer_id": "contact_id", "region": "r_b", "churn_date": "c_b"})
    e = edges.join(contacts, on="contact_id", how="left").join(
        known.select("customer_id", pl.col("region").alias("r_a")), on="customer_id", how="left"
    )
    gone = pl.col("c_b").is_between(cut - dt.timedelta(days=90), cut, closed="left")
    outside = (
        pl.col("r_a").is_not_null() & pl.col("r_b").is_not_null() & (pl.col("r_a") != pl.col("r_b"))
    )
    sums = e.group_by("customer_id").agg(
        pl.len().cast(pl.Int64).alias("n_contacts"),
        pl.col("minutes").sum().round(6).alias("call_minutes_12m"),
        outside.fill_null(False).cast(pl.Float64).mean().alias("outside_region_share"),
        gone.fill_null(False).cast(pl.Float64).mean().alias("churned_contacts_share_90d"),
    )
    return sums.join(
        pagerank(edges.select("customer_id", "contact_id", "minutes")), on="customer_id"
    )


def test_one_call_graph_gives_every_cut(tables: dict[str, pl.LazyFrame]) -> None:
    from features.callgraph import CallGraph

    cfg = FeaturesConfig()
    graph = CallGraph.read(tables["calls"], tables["customers"], CUT)
    for days in (0, 90, 180, 365):
        cut = CUT - dt.timedelta(days=days)
        got = graph.scores(cut, cfg)
        want = _direct_influence(tables, cut).sort("customer_id").select(got.columns)
        assert got.height > 1_000
        assert_frame_equal(got, want, check_exact=True)


def test_the_graph_summed_part_by_part_equals_the_whole(
    tables: dict[str, pl.LazyFrame], tmp_path: Path
) -> None:
    from features.callgraph import CallGraph

    split = split_tables(tables, tmp_path / "buckets", 5)
    parts = split.calls_parts()
    pairs = [
        p.select(pl.min_horizontal("caller_id", "callee_id").unique()).collect().to_series()
        for p in parts
    ]
    assert all(len(p) for p in pairs)  # every part holds calls
    assert sum(len(p) for p in pairs) == pl.concat(pairs).n_unique()  # a pair in one part
    whole = CallGraph.read(tables["calls"], tables["customers"], CUT)
    by_part = CallGraph.read(parts, tables["customers"], CUT)
    for days in (0, 180):
        cut = CUT - dt.timedelta(days=days)
        assert_frame_equal(
            by_part.scores(cut, FeaturesConfig()),
            whole.scores(cut, FeaturesConfig()),
            check_exact=True,
        )


def test_local_profiles_read_the_graph_once(tables: dict[str, pl.LazyFrame]) -> None:
    from pipelines.buckets import LocalProfiles

    cfg = FeaturesConfig()
    profiles = LocalProfiles(CUT)  # no split: the input tables as one bucket
    first = profiles(tables, CUT, cfg)
    graph = profiles.graph(tables)
    earlier = CUT - dt.timedelta(days=90)
    sample = CustomerSample(share=0.3)
    second = profiles(tables, earlier, cfg, sample)
    assert profiles.graph(tables) is graph  # not read again
    assert_frame_equal(first, build_profile(tables, CUT, cfg).collect())
    assert_frame_equal(second, build_profile(tables, earlier, cfg, sample).collect())
    profiles.release()
    assert profiles.graph(tables) is not graph


def test_a_cut_before_any_call_has_no_graph(tables: dict[str, pl.LazyFrame]) -> None:
    from features.callgraph import CallGraph

    graph = CallGraph.read(tables["calls"], tables["customers"], CUT)
    none = graph.scores(dt.date(2000, 1, 1), FeaturesConfig())
    assert none.height == 0 and none.columns == graph.scores(CUT, FeaturesConfig()).columns
    empty = CallGraph.read(tables["calls"].clear(), tables["customers"], CUT)
    assert empty.scores(CUT, FeaturesConfig()).height == 0
