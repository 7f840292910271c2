"""The Spark call-graph features against the local Polars ones, on a generated operator.

The calls get a few hand-made rows on top of the generator's: contacts who are not
customers, a self-call, zero- and negative-minute pairs (dangling PageRank nodes), a mid-month
``month`` and a customer who calls before signing up. Both cuts are computed in one go (one
PageRank iteration for the two), as a run computes the cuts a stage expects.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

pytest.importorskip("pyspark")

from pyspark.sql import SparkSession

from churn.network import EdgeList
from crm_engine.config import FeaturesConfig
from crm_engine.io import load_tables
from crm_engine.parts import FrameParts
from features.influence import add_influence, influence_columns, undirected_edges
from features.sample import bucket_expr
from pipelines.spark.influence import CUT as CUT_COLUMN
from pipelines.spark.influence import (
    SparkCallGraph,
    SparkContacts,
    influence_frame,
    pair_months_frame,
)

AS_OF = dt.date(2025, 1, 1)  # the day after the generated data ends
CUT = dt.date(2024, 7, 15)  # mid-month: July is not observed, June is the last month
# A contagion window other than the default, and 7 PageRank steps.
CONFIG = FeaturesConfig(contagion_days=30, pagerank_iterations=7)
REL, ABS = 1e-9, 1e-12
"""Against the local result: shares are means of the same 0s and 1s, added in another order."""


def _extra_calls(customers: pl.DataFrame) -> pl.DataFrame:
    late = customers.sort("signup_date").get_column("customer_id")[-1]
    rows = [
        (900_001, 1, dt.date(2024, 5, 1), 3, 12.5),  # a contact who is no customer
        (2, 900_001, dt.date(2024, 11, 1), 1, 4.0),
        (3, 3, dt.date(2024, 5, 1), 2, 9.0),  # self-call: dropped
        (4, 900_002, dt.date(2024, 2, 1), 1, 0.0),  # zero minutes: 900_002 is dangling
        (900_003, 5, dt.date(2024, 3, 1), 1, -2.5),  # negative: weighs 0, 900_003 dangling
        (6, 7, dt.date(2024, 3, 17), 2, 3.3),  # mid-month date, truncated to March
        (900_004, 900_005, dt.date(2024, 4, 1), 5, 21.7),  # two non-customers
        (late, 8, dt.date(2024, 1, 1), 1, 1.9),  # before the signup of the latest customer
    ]
    schema = ["caller_id", "callee_id", "month", "n_calls", "minutes"]
    return pl.DataFrame(rows, schema=schema, orient="row")


@pytest.fixture(scope="module")
def operator(
    generated_operator: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, object]:
    """The generated tables (Polars) plus the calls and customers as Parquet for Spark."""
    root = tmp_path_factory.mktemp("influence")
    tables = load_tables(generated_operator)
    customers = tables["customers"].collect()
    calls = tables["calls"].collect()
    calls = pl.concat([calls, _extra_calls(customers).select(calls.columns)]).cast(calls.schema)
    paths = {"customers": root / "customers.parquet", "calls": root / "calls.parquet"}
    customers.write_parquet(paths["customers"])
    calls.write_parquet(paths["calls"])
    return {"customers": customers, "calls": calls, "paths": paths}


def _spark_results(
    spark: SparkSession,
    calls_path: Path,
    customers_path: Path,
    cuts: list[dt.date],
    cfg: FeaturesConfig = CONFIG,
) -> dict[dt.date, pl.DataFrame]:
    """The columns of ``cuts`` computed together, by cut."""
    pairs = pair_months_frame(spark.read.parquet(str(calls_path)))
    customers = spark.read.parquet(str(customers_path))
    frame = influence_frame(spark, pairs, customers, cuts, cfg)
    assert frame.columns == [CUT_COLUMN, "customer_id", *influence_columns(cfg)]
    types = {f.name: f.dataType.simpleString() for f in frame.schema.fields}
    assert types == {
        CUT_COLUMN: "date",
        "customer_id": "bigint",
        **{c: "bigint" if t == pl.Int64() else "double" for c, t in influence_columns(cfg).items()},
    }
    rows = pl.from_arrow(frame.toArrow())
    assert isinstance(rows, pl.DataFrame)
    return {
        cut: rows.filter(pl.col(CUT_COLUMN) == cut).drop(CUT_COLUMN).sort("customer_id")
        for cut in cuts
    }


@pytest.fixture(scope="module")
def spark_results(spark: SparkSession, operator: dict[str, object]) -> dict[dt.date, pl.DataFrame]:
    paths = operator["paths"]
    assert isinstance(paths, dict)
    return _spark_results(spark, paths["calls"], paths["customers"], [AS_OF, CUT])


def assert_close(ours: pl.DataFrame, theirs: pl.DataFrame, rel: float, absolute: float) -> None:
    """Same ids; integer columns equal; float columns within ``rel`` (at least ``absolute``)."""
    assert ours.get_column("customer_id").to_list() == theirs.get_column("customer_id").to_list()
    joined = theirs.join(ours, on="customer_id", suffix="_spark")
    for name, dtype in influence_columns(CONFIG).items():
        a, b = joined.get_column(f"{name}_spark"), joined.get_column(name)
        if dtype == pl.Int64():
            assert (a == b).all(), name
            continue
        error = (a - b).abs()
        bound = (b.abs() * rel).clip(lower_bound=absolute)
        worst = (error / bound).max()
        assert (error <= bound).all(), f"{name}: worst error {worst} of the allowed"


def _local_result(calls: pl.DataFrame, customers: pl.DataFrame, as_of: dt.date) -> pl.DataFrame:
    # Everyone who could be a node, non-customer contacts included, so that their rows
    # (which add_influence computes but a customer profile drops) are compared too.
    ids = pl.concat(
        [
            customers.get_column("customer_id"),
            calls.get_column("caller_id"),
            calls.get_column("callee_id"),
        ]
    )
    profile = ids.unique().sort().to_frame("customer_id").lazy()
    return add_influence(profile, calls.lazy(), customers.lazy(), as_of, CONFIG).collect()


@pytest.mark.parametrize("as_of", [AS_OF, CUT], ids=["as_of", "earlier_cut"])
def test_matches_local(
    operator: dict[str, object], spark_results: dict[dt.date, pl.DataFrame], as_of: dt.date
) -> None:
    calls, customers = operator["calls"], operator["customers"]
    assert isinstance(calls, pl.DataFrame) and isinstance(customers, pl.DataFrame)
    local = _local_result(calls, customers, as_of)
    remote = spark_results[as_of]
    assert remote.get_column("customer_id").is_unique().all()

    # One Spark row per node of the graph; everyone else gets add_influence's 0 fill.
    in_graph = local.filter(pl.col("n_contacts") > 0).sort("customer_id")
    columns = list(influence_columns(CONFIG))
    assert all(v == 0 for v in local.filter(pl.col("n_contacts") == 0).select(columns).sum().row(0))
    # The hand-made rows are there: non-customers are nodes, 900_002/900_003 dangle.
    nodes = set(remote.get_column("customer_id"))
    assert {900_001, 900_002, 900_003, 900_004, 900_005} <= nodes
    assert (remote.get_column("influence_score").max(), remote.height) == (1.0, in_graph.height)
    # Every column says something (a column of zeros would match trivially).
    assert all(remote.get_column(c).max() > 0 for c in columns), remote.describe()

    assert_close(remote, in_graph, REL, ABS)


def test_rows_after_the_cut_change_nothing(
    spark: SparkSession,
    operator: dict[str, object],
    spark_results: dict[dt.date, pl.DataFrame],
    tmp_path: Path,
) -> None:
    calls = operator["calls"]
    paths = operator["paths"]
    assert isinstance(calls, pl.DataFrame) and isinstance(paths, dict)
    # Months that end after CUT (July included): other minutes, swapped directions, rows
    # dropped, and new rows mid-July between existing and new ids.
    unseen = pl.col("month") >= dt.date(2024, 7, 1)
    changed = calls.with_columns(
        pl.when(unseen).then(pl.col("minutes") * 3 + 1).otherwise("minutes").alias("minutes"),
        pl.when(unseen).then(pl.col("callee_id")).otherwise("caller_id").alias("caller_id"),
        pl.when(unseen).then(pl.col("caller_id")).otherwise("callee_id").alias("callee_id"),
    ).filter(~unseen | (pl.int_range(pl.len()) % 5 != 0))
    extra = pl.DataFrame(
        {
            "caller_id": [1, 950_000, 10],
            "callee_id": [2, 1, 10],
            "month": [dt.date(2024, 7, 20), dt.date(2024, 7, 1), dt.date(2024, 9, 1)],
            "n_calls": [4, 1, 2],
            "minutes": [100.0, 50.0, 7.0],
        }
    )
    changed = pl.concat([extra.select(calls.columns).cast(calls.schema), changed])
    assert not changed.equals(calls)
    changed.write_parquet(tmp_path / "calls.parquet")
    # CUT alone this time: the same columns as when computed beside AS_OF
    again = _spark_results(spark, tmp_path / "calls.parquet", paths["customers"], [CUT])[CUT]
    assert again.equals(spark_results[CUT])


def test_no_complete_month_gives_no_rows(spark: SparkSession, operator: dict[str, object]) -> None:
    paths = operator["paths"]
    assert isinstance(paths, dict)
    # The data starts on 2023-01-01: on 2023-01-20 no month has ended (the schema is
    # checked all the same).
    early = dt.date(2023, 1, 20)
    result = _spark_results(spark, paths["calls"], paths["customers"], [early])[early]
    assert result.height == 0


def test_network_sums_on_the_executors_match_the_edge_list(
    spark: SparkSession, operator: dict[str, object], tmp_path: Path
) -> None:
    """What network value reads of the call graph (``churn.network.ContactGraph``), on the
    executors and from the local edge list: each node's contact count (the run reads the
    profile's ``n_contacts``: the graph's column must be the edge list's degrees), and per
    node the sum of a value over its contacts (non-customers and contacts without a value
    included)."""
    calls, customers, paths = operator["calls"], operator["customers"], operator["paths"]
    assert isinstance(calls, pl.DataFrame) and isinstance(customers, pl.DataFrame)
    assert isinstance(paths, dict)
    graph = SparkCallGraph(
        spark,
        spark.read.parquet(str(paths["calls"])),
        spark.read.parquet(str(paths["customers"])),
        tmp_path / "graph",
    )
    remote = SparkContacts(graph, CUT, tmp_path / "contacts")
    local = EdgeList(undirected_edges(calls.lazy(), CUT))
    columns = graph.scores(CUT, CONFIG, pl.Int64())
    degrees = columns.select("customer_id", pl.col("n_contacts").cast(pl.Float64))
    degrees = degrees.collect().sort("customer_id")
    assert degrees.equals(local.degrees().collect().sort("customer_id"))
    assert degrees.height > 1_000 and 900_001 in degrees.get_column("customer_id")
    ids = pl.concat([customers.get_column("customer_id"), pl.Series([900_001, 900_004])])
    # values for three in four of them, one a contact who is no customer; 0.1 to 1.0
    values = pl.DataFrame({"contact_id": ids}).filter(pl.col("contact_id") % 4 != 0)
    values = values.with_columns(((pl.col("contact_id") % 10 + 1) / 10).alias("value"))
    summed = remote.sum_over_contacts(FrameParts(values)).plan.collect().sort("customer_id")
    expected = local.sum_over_contacts(FrameParts(values)).plan.collect().sort("customer_id")
    assert summed.height == expected.height > 1_000
    assert summed.get_column("customer_id").equals(expected.get_column("customer_id"))
    error = (summed.get_column("value") - expected.get_column("value")).abs()
    assert (error <= (expected.get_column("value") * REL).clip(lower_bound=ABS)).all()
    assert expected.get_column("value").min() > 0
    # split by the profile's buckets, a part of the scores (a bucket's customers) reads its own
    bucketed = SparkCallGraph(
        spark,
        spark.read.parquet(str(paths["calls"])),
        spark.read.parquet(str(paths["customers"])),
        tmp_path / "graph-by-bucket",
        buckets=3,
    )
    sums = SparkContacts(bucketed, CUT, tmp_path / "contacts-by-bucket").sum_over_contacts(
        FrameParts(values)
    )
    assert sums.buckets == 3
    by_bucket = expected.with_columns(bucket_expr(3).alias("b"))
    for b in range(3):
        ids = by_bucket.filter(pl.col("b") == b).select("customer_id")
        assert 0 < ids.height < expected.height
        got = sums.of(ids).sort("customer_id")
        assert got.get_column("customer_id").equals(ids.get_column("customer_id").sort())
        mine = expected.join(ids, on="customer_id", how="semi").get_column("value")
        assert ((got.get_column("value") - mine).abs() <= (mine * REL).clip(lower_bound=ABS)).all()
        assert sums.plan.filter(pl.col("_bucket") == b).collect().height == ids.height
