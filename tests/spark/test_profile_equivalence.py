"""The Spark backend's profiles equal the local backend's, column for column."""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import features
from crm_engine.commit import FAULT_ENV
from crm_engine.config import FeaturesConfig, PipelineConfig
from crm_engine.io import find_tables, load_tables
from crm_engine.parts import exact_quantiles
from features.sample import CustomerSample
from pipelines.runner import local_profile, run_pipeline
from pipelines.spark.profile import KILL_POINT, spark_profile
from pipelines.stages import pipeline
from tests.spark.conftest import AS_OF, BUCKETS

FEATURES = FeaturesConfig()


def assert_same_profile(spark_frame: pl.DataFrame, local_frame: pl.DataFrame) -> None:
    """Same columns, dtypes, rows and order; integers, text and booleans exact, floats to
    one unit in the 9th significant figure.

    Both backends round floats to 9 significant figures (``FLOAT_SIG_FIGS``); a float sum whose
    rows arrive in another order (Polars' streaming morsels, Spark's shuffle) can differ in its
    last bits and, right at a rounding boundary, round to the neighbouring 9-figure value: a
    relative difference of at most 1e-8. Almost always the frames are equal bit for bit.
    """
    assert spark_frame.schema == local_frame.schema
    assert spark_frame.height == local_frame.height > 0
    assert_frame_equal(spark_frame, local_frame, check_exact=False, rel_tol=1e-8, abs_tol=0.0)


@pytest.fixture(scope="module")
def tables(generated_operator: Path) -> dict[str, pl.LazyFrame]:
    return load_tables(generated_operator)


@pytest.mark.parametrize(
    ("cut", "share"), [(AS_OF, None), ("2024-01-01", 0.3)], ids=["as_of", "earlier_cut_sampled"]
)
def test_profile_equals_the_local_profile(
    spark: object,
    generated_operator: Path,
    tables: dict[str, pl.LazyFrame],
    cut: str,
    share: float | None,
) -> None:
    """At as_of for everyone, and at an earlier cut for a hashed sample of customers (what the
    churn stage's bounded training cuts ask for)."""
    as_of = dt.date.fromisoformat(cut)
    sample = None if share is None else CustomerSample(share=share, seed=5)
    on_spark = spark_profile(
        spark, generated_operator, tables, as_of, FEATURES, sample, buckets=BUCKETS
    )  # type: ignore[arg-type]
    local = local_profile(tables, as_of, FEATURES, sample)
    assert_same_profile(on_spark, local)
    if sample is not None:
        everyone = local_profile(tables, as_of, FEATURES)
        assert 0.2 * everyone.height < local.height < 0.4 * everyone.height


def test_single_files_and_csv_tables_give_the_same_profile(
    spark: object, generated_operator: Path, tmp_path: Path
) -> None:
    """Tables stored as ``<name>.parquet`` and as ``<name>.csv`` (text cast to the contract on
    the executors by the local backend's cast) give the local profile too."""
    data = tmp_path / "data"
    data.mkdir()
    for i, name in enumerate(["customers", "transactions", "usage", "network", "calls"]):
        frame = pl.read_parquet(generated_operator / name / "*.parquet")
        if i % 2:
            frame.write_csv(data / f"{name}.csv")
        else:
            frame.write_parquet(data / f"{name}.parquet")
    tables = load_tables(data)
    as_of = dt.date.fromisoformat(AS_OF)
    cfg = FEATURES
    on_spark = spark_profile(spark, data, tables, as_of, cfg, buckets=BUCKETS)  # type: ignore[arg-type]
    assert_same_profile(on_spark, local_profile(tables, as_of, cfg))


def test_tables_written_by_spark_give_the_same_profile(
    spark: object, generated_operator: Path, tmp_path: Path
) -> None:
    """Input tables that are directories Spark wrote (several ``part-*`` files, ``_SUCCESS``
    and ``.crc`` files beside them, Spark's own timestamp encoding; customers partitioned by
    region, the column only in the paths ``region=<value>/``): both backends read them and
    give the profile of the generated files. (The Python workers read the plain directories
    themselves, Spark the partitioned one.)"""
    from pyspark.sql import SparkSession

    assert isinstance(spark, SparkSession)
    data = tmp_path / "data"
    for name, source in find_tables(generated_operator).items():
        writer = spark.read.parquet(str(source.path)).repartition(3).write
        if name == "customers":
            writer = writer.partitionBy("region")
        writer.parquet(str(data / name))
    assert len(list((data / "transactions").glob("part-*.parquet"))) == 3
    assert len(list((data / "customers").glob("region=*/part-*.parquet"))) >= 3
    assert (data / "transactions" / "_SUCCESS").exists()
    tables = load_tables(data)
    as_of = dt.date.fromisoformat(AS_OF)
    reference = local_profile(load_tables(generated_operator), as_of, FEATURES)
    assert_same_profile(local_profile(tables, as_of, FEATURES), reference)
    on_spark = spark_profile(spark, data, tables, as_of, FEATURES, buckets=BUCKETS)
    assert_same_profile(on_spark, reference)


def test_text_ids_give_the_same_profile(
    spark: object, generated_operator: Path, tmp_path: Path
) -> None:
    """Customer ids that are text, in every table and both ends of ``calls``: the call graph
    is there (it came out empty: the calls' ids were cast as integers on the executors)."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ["customers", "transactions", "usage", "calls"]:
        frame = pl.read_parquet(generated_operator / name / "*.parquet")
        keys = ["caller_id", "callee_id"] if name == "calls" else ["customer_id"]
        frame.with_columns(pl.format("c{}", pl.col(k)).alias(k) for k in keys).write_parquet(
            data / f"{name}.parquet"
        )
    tables = load_tables(data)
    as_of = dt.date.fromisoformat(AS_OF)
    on_spark = spark_profile(spark, data, tables, as_of, FEATURES, buckets=BUCKETS)  # type: ignore[arg-type]
    local = local_profile(tables, as_of, FEATURES)
    assert local.schema["customer_id"] == pl.String
    assert local["n_contacts"].sum() > local.height  # the graph is there to compare
    assert_same_profile(on_spark, local)


def test_a_pipeline_run_on_spark_writes_the_same_outputs(
    spark_config: PipelineConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every stage of ``crm-engine run`` (churn with its seven training cuts, loyalty,
    contagion and network value included) on both backends: the same profiles and the same
    scores. The profiles are equal, so every model fits the same rows: integers, text and
    dates exactly, floats to 1e-9 relative (1e-9 absolute near 0).

    The Spark run values and scores everyone on the executors (``score_on_executors``, the
    default: the valuation's and the churn stage's mappers; off, the driver maps the same files,
    see :func:`test_a_stage_scores_everyone_on_the_executors`). The Python worker of its first
    profile task is killed (SIGKILL) mid-task: Spark retries the task (the session tries a task
    twice) and the run gives the same outputs.

    The Spark run registers its models (the embedded MLflow store of its output directory);
    ``run --score-only`` on Spark then loads them from the registry, maps everyone through the
    executors again and writes the same scores.

    The holdouts, the churn and loyalty training and the contagion estimate see a sample of
    the customers (bounds below the customer count): each backend reads its rows where it
    keeps them (``PointInTime.sample_tables``), and the fits see the same rows.
    """
    for bound in (
        "valuation.max_holdout_customers",
        "churn.max_training_customers",
        "contagion.max_customers",
    ):
        section, name = bound.split(".")
        setattr(getattr(spark_config, section), name, 1_500)  # of 2,500 customers
    claim = tmp_path / "worker-killed"
    monkeypatch.setenv(FAULT_ENV, f"{KILL_POINT}@{claim}")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert spark_config.engine.spark.score_on_executors
    on_spark = run_pipeline(spark_config, pipeline("run"), tracking=True)
    monkeypatch.delenv(FAULT_ENV)
    assert claim.exists()  # a worker was killed, and the run went on
    local_cfg = spark_config.model_copy(deep=True)
    local_cfg.engine.backend = "local"
    local_cfg.output.dir = tmp_path / "local-out"
    local = run_pipeline(local_cfg, pipeline("run"), tracking=False)
    assert on_spark.output_dir is not None and local.output_dir is not None
    for name in ("profiles.parquet", "scores.parquet"):  # the scores in the parts' order
        assert_frame_equal(
            pl.read_parquet(on_spark.output_dir / name).sort("customer_id"),
            pl.read_parquet(local.output_dir / name),
            check_exact=False,
            rel_tol=1e-9,
            abs_tol=1e-9,
        )
    scores = pl.read_parquet(on_spark.output_dir / "scores.parquet")
    for column in (
        "tenure_days",
        "frequency",
        "monetary_avg",
        "segment_id",
        "clv",
        "p_alive",
        "churn_probability",
        "churn_drivers",
        "loyalty_score",
        "influence_score",
        "network_value",
    ):
        assert scores[column].null_count() < scores.height, column
    assert scores["network_value"].max() > 0  # contagion found something to value
    # the fits' metrics to 1e-9 (the issue's tolerance for floats): LightGBM's and BLAS's
    # threads add in no fixed order, so two fits on the same rows differ in the last bits
    assert on_spark.metrics["churn"] == pytest.approx(local.metrics["churn"], rel=1e-9, abs=1e-12)
    crosstab = on_spark.reports["churn"].lifecycle_by_band  # counted where the scores lie
    assert crosstab == local.reports["churn"].lifecycle_by_band
    assert sum(sum(bands.values()) for bands in crosstab.values()) == scores.height
    registered = run_pipeline(spark_config, pipeline("score-only"), tracking=True)
    assert registered.output_dir is not None
    manifest = json.loads((registered.output_dir / "manifest.json").read_text())
    assert set(manifest["model_versions"]) == {"churn", "loyalty", "segmentation", "clv"}
    assert "valuation.holdout" not in json.dumps(manifest["metrics"]), "no refit in score-only"
    assert_frame_equal(pl.read_parquet(registered.output_dir / "scores.parquet"), scores)


def test_the_cuts_a_stage_expects_are_computed_in_one_job(
    spark_config: PipelineConfig,
    tables: dict[str, pl.LazyFrame],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cuts announced together (``ProfileCache.expect``, what the churn training does with
    its cuts) are computed in one batch, their call-graph columns in one more; their profiles
    are then read from it and equal the local ones, and so are a narrower sample's."""
    from pipelines.profiles import ProfileCache
    from pipelines.spark import SparkProfiles
    from pipelines.spark import profile as spark_profiles
    from pipelines.spark.session import LazySession

    monkeypatch.setattr(spark_profiles, "FILE_ROWS", 700)  # files of 2,500 customers' profile

    builder = SparkProfiles(spark_config, LazySession(spark_config.engine.spark), tmp_path)
    as_of = dt.date.fromisoformat(AS_OF)
    cache = ProfileCache(tables, as_of, FEATURES, builder)
    cuts = [dt.date(2024, 7, 1), dt.date(2024, 4, 1)]
    sample = CustomerSample(share=0.5, seed=3)
    cache.expect(cuts, sample)

    def batches() -> dict[str, list[str]]:
        return {
            kind: sorted(p.name for p in (tmp_path / kind).iterdir())
            for kind in ("profiles", "callgraph")
        }

    assert batches() == {"profiles": ["batch-000"], "callgraph": ["batch-000"]}
    for kind in ("profiles/batch-000", "callgraph/batch-000"):
        written = {p.name for p in (tmp_path / kind).glob("_cut=*")}
        assert written == {"_cut=2024-07-01", "_cut=2024-04-01"}, kind
    for cut in cuts:
        assert_same_profile(cache.get(cut, sample), local_profile(tables, cut, FEATURES, sample))
    assert batches() == {"profiles": ["batch-000"], "callgraph": ["batch-000"]}  # read, no job
    narrower = CustomerSample(share=0.3, seed=3)  # within the batch's sample: read from it
    assert_same_profile(
        cache.get(cuts[1], narrower), local_profile(tables, cuts[1], FEATURES, narrower)
    )
    assert batches() == {"profiles": ["batch-000"], "callgraph": ["batch-000"]}
    everyone = cache.get(cuts[0])  # not expected: a batch of its own, the graph's reused
    assert batches() == {"profiles": ["batch-000", "batch-001"], "callgraph": ["batch-000"]}
    local = local_profile(tables, cuts[0], FEATURES)
    assert_same_profile(everyone, local)
    # everyone's profile written a file of the executors' at a time, as the run's spill
    cut = tmp_path / "profiles" / "batch-001" / "_cut=2024-07-01"
    written = list(cut.glob("_bucket=*/*.parquet"))
    assert len(written) > 1  # so the parts are merged
    # a file per bucket, and the graph's columns by the same buckets: a file is finished with
    # its own bucket's nodes alone
    graph_cut = tmp_path / "callgraph" / "batch-000" / "_cut=2024-07-01"
    buckets = {p.parent.name for p in written}
    assert buckets == {f"_bucket={b}" for b in range(BUCKETS)}
    assert {p.parent.name for p in graph_cut.glob("_bucket=*/*.parquet")} == buckets
    path = tmp_path / "spill" / "profile.parquet"
    path.parent.mkdir()
    assert builder.write(tables, cuts[0], FEATURES, path) == local.height
    assert_same_profile(pl.read_parquet(path), local)
    assert [p.name for p in path.parent.iterdir()] == ["profile.parquet"]  # parts removed


def where_scored(batch: pl.DataFrame) -> pl.DataFrame:
    """A mapper (:data:`pipelines.profiles.Mapper`): a column computed from the profile, and
    the process that computed it."""
    return batch.select(
        "customer_id",
        (pl.col("tenure_days") * 2).alias("twice"),
        pl.lit(os.getpid(), pl.Int64).alias("pid"),
    )


def summed(batch: pl.DataFrame) -> pl.DataFrame:
    """An aggregate of a slice of :func:`where_scored`'s rows, and the process that made it."""
    return batch.select(
        pl.len().cast(pl.Int64).alias("n"),
        pl.col("twice").sum(),
        pl.lit(os.getpid(), pl.Int64).alias("pid"),
    )


def refuse(batch: pl.DataFrame) -> pl.DataFrame:
    raise ValueError(f"no scores for {batch.height} customers")


def test_a_stage_scores_everyone_on_the_executors(
    spark_config: PipelineConfig,
    tables: dict[str, pl.LazyFrame],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``ProfileCache.map`` over everyone's profile (the plan ``everyone()`` handed out) runs
    on the executors, a task per file they wrote: only the results reach the driver, and they
    equal the mapper's on the local profile, even when the Python worker of the first task is
    killed (SIGKILL) and Spark retries it. Any other profile is mapped on the driver; a mapper
    that raises fails the job with one line.

    The results can stay there (``map_parts``): their aggregates run on the executors too, and
    quantiles computed from them are NumPy's of the local results."""
    from pipelines.profiles import ProfileCache
    from pipelines.spark import SparkProfiles
    from pipelines.spark import profile as spark_profiles
    from pipelines.spark.mapping import SparkParts
    from pipelines.spark.profile import SparkJobError
    from pipelines.spark.session import LazySession

    monkeypatch.setattr(spark_profiles, "FILE_ROWS", 700)  # files of 2,500 customers' profile
    cfg = spark_config.model_copy(deep=True)
    cfg.engine.spark.score_on_executors = True
    builder = SparkProfiles(cfg, LazySession(cfg.engine.spark), tmp_path)
    as_of = dt.date.fromisoformat(AS_OF)
    cache = ProfileCache(tables, as_of, FEATURES, builder, spill=tmp_path / "spill")
    everyone = cache.everyone()
    claim = tmp_path / "worker-killed"  # the first scoring task's worker dies: retried
    monkeypatch.setenv(FAULT_ENV, f"{KILL_POINT}@{claim}")
    mapped = cache.map(everyone, where_scored).sort("customer_id")
    monkeypatch.delenv(FAULT_ENV)
    assert claim.exists()
    local = where_scored(local_profile(tables, as_of, FEATURES)).sort("customer_id")
    assert_frame_equal(mapped.drop("pid"), local.drop("pid"))
    assert os.getpid() not in mapped["pid"].to_list()  # the executors' Python workers did it
    parts = sorted(p.name for p in (tmp_path / "mapped" / "map-000").iterdir())
    assert len(parts) == len(list((tmp_path / "profiles").rglob("*.parquet"))) > 1, parts
    left = cache.map_parts(everyone, where_scored)  # the results left on the executors
    assert isinstance(left, SparkParts)
    sums = left.aggregate(summed)
    assert os.getpid() not in sums["pid"].to_list()
    assert sums.height == len(parts)  # an aggregate per file (one slice each)
    assert sums["n"].sum() == local.height and sums["twice"].sum() == local["twice"].sum()
    qs = [0.1, 0.5, 0.9]
    assert exact_quantiles(left, "twice", qs) == list(np.quantile(local["twice"].to_numpy(), qs))
    other = everyone.head(100)  # not the plan everyone() handed out: mapped here
    assert cache.map(other, where_scored)["pid"].unique().to_list() == [os.getpid()]
    with pytest.raises(SparkJobError, match=r"ValueError: no scores for \d+ customers$"):
        cache.map(everyone, refuse)
    cfg.engine.spark.score_on_executors = False  # the same, on the driver
    here = cache.map(everyone, where_scored)
    assert_frame_equal(here.drop("pid"), mapped.drop("pid").sort("customer_id"))
    assert here["pid"].unique().to_list() == [os.getpid()]


def test_the_valuation_reads_its_earlier_cuts_from_one_batch(
    spark_config: PipelineConfig, tables: dict[str, pl.LazyFrame], tmp_path: Path
) -> None:
    """Every earlier cut the valuation reads (the holdouts', the hazard's landmarks at as_of
    and at the revenue holdout's cut) is announced up front and computed in one Spark batch;
    the fit at as_of reads everyone's profile from one more. A read nobody announced would
    show as a third batch."""
    from pipelines.profiles import ProfileCache
    from pipelines.spark import SparkProfiles
    from pipelines.spark.session import LazySession
    from valuation.run import run_valuation

    builder = SparkProfiles(spark_config, LazySession(spark_config.engine.spark), tmp_path)
    as_of = dt.date.fromisoformat(AS_OF)
    cache = ProfileCache(tables, as_of, FEATURES, builder)
    at = features.PointInTime(
        as_of=as_of,
        tables=tables,
        profile_at=cache.get,
        expect=cache.expect,
        start=cache.data_start(),
        n_customers=cache.customers(),
    )
    run = run_valuation(at, spark_config.valuation)  # postpaid_model auto: sBG and hazard
    assert run.report.revenue_holdout is not None and run.holdout is not None
    batches = sorted(p.name for p in (tmp_path / "profiles").iterdir())
    assert batches == ["batch-000", "batch-001"]
    earlier = {p.name for p in (tmp_path / "profiles" / "batch-000").glob("_cut=*")}
    assert len(earlier) >= 4  # the two holdouts' cuts and the hazard's landmarks
    assert {p.name for p in (tmp_path / "profiles" / "batch-001").glob("_cut=*")} == {
        f"_cut={AS_OF}"
    }


def test_a_sample_s_rows_are_kept_by_the_executors(
    spark_config: PipelineConfig, tables: dict[str, pl.LazyFrame], tmp_path: Path
) -> None:
    """What a fit on a sample reads of the tables on Spark (``PointInTime.sample_tables``):
    the executors keep its rows of a table in a job of their own when it is first read (of
    the packed buckets holding the sample; the calls its customers made or received, of the
    calls), and each table read from there holds the rows filtering the whole table gives."""
    from features.sample import restrict
    from pipelines.spark import SparkProfiles
    from pipelines.spark.session import LazySession

    builder = SparkProfiles(spark_config, LazySession(spark_config.engine.spark), tmp_path)
    sample = CustomerSample(share=0.3)
    got = builder.sampled(tables, sample)
    assert got.keys() == tables.keys()
    samples = tmp_path / "samples" / "sample-000"
    got["transactions"].select(pl.len()).collect()
    assert [p.name for p in samples.iterdir()] == ["transactions"]  # only what was read
    expected = restrict(tables, sample)
    for name in tables:
        rows, want = got[name].collect(), expected[name].collect()
        assert rows.schema == want.schema
        assert_frame_equal(rows.sort(rows.columns), want.sort(want.columns))
    for name in ("transactions", "calls"):
        assert got[name].select(pl.len()).collect().item() > 0
    assert sorted(p.name for p in samples.iterdir()) == sorted(tables)
    builder.sampled(tables, sample)["calls"].collect()  # again: the same jobs' files
    assert [p.name for p in (tmp_path / "samples").iterdir()] == ["sample-000"]


def test_a_table_is_counted_where_it_lies(
    spark_config: PipelineConfig, tables: dict[str, pl.LazyFrame], tmp_path: Path
) -> None:
    """A function of a table's rows whose results add up (the contract model's lifetimes,
    ``PointInTime.aggregated``) runs on the executors, a task per packed part; added up, the
    parts give what the whole table gives. A function that raises fails the job in one line."""
    from pipelines.spark import SparkProfiles
    from pipelines.spark.profile import SparkJobError
    from pipelines.spark.session import LazySession
    from valuation.contract import contract_lifetimes

    builder = SparkProfiles(spark_config, LazySession(spark_config.engine.spark), tmp_path)
    as_of, start = dt.date.fromisoformat(AS_OF), dt.date(2023, 1, 1)
    count = functools.partial(contract_lifetimes, as_of=as_of, observed_from=start)
    parts = builder.aggregate_table(tables, "customers", count)
    keys = ["entry", "months", "churned"]
    summed = parts.group_by(keys).agg(pl.col("customers").sum()).sort(keys)
    whole = count(tables["customers"])
    assert parts.height > whole.height  # counted a part at a time
    assert_frame_equal(summed, whole)
    assert int(whole["customers"].sum()) > 100

    def refuse(rows: pl.LazyFrame) -> pl.DataFrame:
        raise ValueError("not these rows")

    with pytest.raises(SparkJobError, match=r"aggregating table customers .*ValueError: not"):
        builder.aggregate_table(tables, "customers", refuse)


def test_segments_are_counted_where_they_are_assigned(
    spark_config: PipelineConfig,
    tables: dict[str, pl.LazyFrame],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Segmentation with a previous model on Spark: everyone is assigned on the executors and
    the assignments stay there; the spend tertiles, the frequent values, the segment table and
    the migration are aggregates of the executors' files. They equal the local ones: the same
    segments, counts and words, the table's means to 1e-9."""
    from pipelines.profiles import ProfileCache
    from pipelines.spark import SparkProfiles
    from pipelines.spark import profile as spark_profiles
    from pipelines.spark.session import LazySession
    from segmentation import segment_customers
    from segmentation.assign import PREVIOUS_LABEL

    monkeypatch.setattr(spark_profiles, "FILE_ROWS", 700)  # files of 2,500 customers' profile
    builder = SparkProfiles(spark_config, LazySession(spark_config.engine.spark), tmp_path)
    as_of = dt.date.fromisoformat(AS_OF)
    cache = ProfileCache(tables, as_of, FEATURES, builder, spill=tmp_path / "spill")
    everyone = cache.everyone()
    profile = local_profile(tables, as_of, FEATURES)
    cfg = spark_config.segmentation.model_copy(update={"k": 4})
    previous = segment_customers(profile, cfg.model_copy(update={"k": 3})).model
    here = segment_customers(profile, cfg, previous=previous, features_cfg=FEATURES)
    there = segment_customers(
        everyone,
        cfg,
        previous=previous,
        features_cfg=FEATURES,
        map_everyone=functools.partial(cache.map_parts, everyone),
        everyone=functools.partial(cache.parts, everyone),
    )
    assert isinstance(there.assignments, pl.LazyFrame)  # left on the executors
    assert PREVIOUS_LABEL not in there.assignments.collect_schema().names()
    assert_frame_equal(
        there.assignments.collect().sort("customer_id"), here.assignments.sort("customer_id")
    )
    assert_frame_equal(there.profiles, here.profiles, check_exact=False, rel_tol=1e-9)
    assert there.migration is not None and here.migration is not None
    assert_frame_equal(there.migration, here.migration)
    assert there.report.spend_cut_points == here.report.spend_cut_points
    assert there.report.same_segment_share == here.report.same_segment_share < 1.0
    assert len(list((tmp_path / "mapped").iterdir())) > 3  # the map and its aggregates' jobs
