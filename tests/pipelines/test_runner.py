"""The runner on a tiny dataset: declared schemas checked, one owner per column, atomic commits."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from crm_engine.commit import STALE_SUFFIX, atomic_directory
from crm_engine.config import load_config
from crm_engine.contracts import SCORE_COLUMNS
from pipelines.assemble import assemble_stage
from pipelines.outputs import profile_file
from pipelines.profiles import ProfileCache
from pipelines.runner import Stage, StageContext, StageError, StageOutput, run_pipeline
from pipelines.stages import owned_columns, pipeline


def _cfg(tiny_data: Path, out: Path) -> object:
    return load_config(
        None, {"data.dir": str(tiny_data), "output.dir": str(out), "data.as_of": "2024-01-01"}
    )


def test_every_contract_column_has_exactly_one_owner_stage() -> None:
    owners = [label for stage in pipeline("run") for label in stage.owns]
    assert len(owners) == len(set(owners)), owners
    labels = {c.stage for c in SCORE_COLUMNS}
    assert labels == set(owners)
    # each stage's owned columns, put together, are the contract (customer_id is every key)
    supplied = [c for label in owners for c in owned_columns([label])[1:]]
    assert sorted(["customer_id", *supplied]) == sorted(c.name for c in SCORE_COLUMNS)


def test_a_stage_output_off_its_declared_schema_fails_by_name(
    tiny_data: Path, tmp_path: Path
) -> None:
    def drifting(ctx: StageContext, profile: pl.DataFrame) -> StageOutput:
        return StageOutput(outputs={"extra": profile.select("customer_id", pl.lit("x").alias("n"))})

    declared = pl.Schema({"customer_id": pl.Int64, "n": pl.Int64})
    stages = [
        *pipeline("features"),
        Stage("drift", drifting, ("profile",), ("extra",), schemas={"extra": lambda ctx: declared}),
    ]
    out = tmp_path / "p.parquet"
    with pytest.raises(StageError, match=r"stage drift output extra .*wrong types=\['n: declared"):
        run_pipeline(_cfg(tiny_data, tmp_path / "out"), stages, profile_file(out), tracking=False)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [tiny_data]  # no staging directory left behind
    # the same failure in a run directory never written before leaves no directory at all
    with pytest.raises(StageError, match=r"stage drift output extra"):
        run_pipeline(_cfg(tiny_data, tmp_path / "out"), stages, tracking=False)
    assert list(tmp_path.iterdir()) == [tiny_data]


def test_assemble_takes_each_column_from_its_owner_only() -> None:
    facts = pl.DataFrame(
        {c: [None, None] for c in owned_columns(["features"])},
        schema={c.name: c.dtype for c in SCORE_COLUMNS if c.name in owned_columns(["features"])},
    ).with_columns(
        pl.Series("customer_id", [1, 2]),
        pl.Series("age_band", ["25-34", "65+"]),
        pl.Series("monetary_avg", [None, 12.5]),
        pl.Series("as_of", [dt.date(2024, 1, 1)] * 2),
    )
    # the segmentation frame carries its own (normalised) age_band and an unowned column: the
    # scores keep the profile's age band, and nothing is recomputed
    segments = pl.DataFrame(
        {
            "customer_id": [2, 1],
            "spend_level": ["high", "low"],
            "age_band": ["unknown", "unknown"],
            "segment_id": [3, 4],
            "segment_name": ["b", "a"],
            "monetary_avg": [0.0, 0.0],
        }
    )
    ctx = StageContext(
        cfg=load_config(None), as_of=dt.date(2024, 1, 1), workdir=Path("."), tracking=False
    )
    sources = {"profile_facts": ("features",), "segments": ("segmentation",)}
    out = assemble_stage(ctx, sources=sources, profile_facts=facts, segments=segments)
    scores = out.outputs["scores"]
    assert scores["age_band"].to_list() == ["25-34", "65+"]
    assert scores["monetary_avg"].to_list() == [None, 12.5]
    assert scores["segment_id"].to_list() == [4, 3]
    assert scores["clv"].null_count() == 2  # valuation did not run: typed nulls


def test_merge_commit_replaces_only_its_files_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    (target / "mine.txt").write_text("user file")
    (target / "old.parquet").write_text("stale")
    (target / "a.json").write_text("old")
    with atomic_directory(target, merge=True) as work:
        (work / "a.json").write_text("new")
        (work / f"old.parquet{STALE_SUFFIX}").touch()
    assert sorted(p.name for p in target.iterdir()) == ["a.json", "mine.txt"]
    assert (target / "a.json").read_text() == "new"

    with pytest.raises(RuntimeError), atomic_directory(target, merge=True) as work:
        (work / "a.json").write_text("half")
        raise RuntimeError("disk full")
    assert (target / "a.json").read_text() == "new"
    assert sorted(p.name for p in target.iterdir()) == ["a.json", "mine.txt"]


def test_non_default_feature_windows_reach_every_model(
    generated_operator: Path, tmp_path: Path
) -> None:
    """network_months = 6, contagion_days = 60: the models see all the columns the profile has."""
    import json

    import features
    from crm_engine.io import load_tables

    cfg = load_config(
        None,
        {
            "data.dir": str(generated_operator),
            "output.dir": str(tmp_path / "out"),
            "data.as_of": "2024-10-01",
            "features.network_months": 6,
            "features.contagion_days": 60,
            "loyalty.enabled": False,
        },
    )
    run_pipeline(cfg, pipeline("run", ["segmentation", "churn"]), tracking=False)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    tables = frozenset(load_tables(generated_operator))
    numeric, categorical = features.model_features(features.profile_schema(cfg.features, tables))
    churn_features = manifest["churn"]["features"]
    assert churn_features == [*numeric, *categorical]
    assert {"dropped_call_rate_mean_6m", "churned_contacts_share_60d"} <= set(churn_features)
    assert not any(f.endswith("_3m") and "_mean_" in f for f in churn_features)
    seg = manifest["segmentation"]["features"]
    assert {"dropped_call_rate_mean_6m", "avg_download_mbps_mean_6m", "latency_ms_mean_6m"} <= set(
        seg
    )


def test_models_train_on_bounded_samples_and_score_everyone(
    generated_operator: Path, tmp_path: Path
) -> None:
    """At 10M customers the earlier cuts are built for a hashed share only; scores still
    cover every customer."""
    import json

    overrides = {
        "data.dir": str(generated_operator),
        "output.dir": str(tmp_path / "out"),
        "data.as_of": "2024-10-01",
        "loyalty.enabled": False,
        "churn.max_training_customers": 800,
        "valuation.max_holdout_customers": 800,
    }
    run_pipeline(
        load_config(None, overrides), pipeline("run", ["valuation", "churn"]), tracking=False
    )
    out = tmp_path / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    full = load_config(None, overrides | {"output.dir": str(tmp_path / "full")})
    from crm_engine.io import load_tables

    ctx = StageContext(
        cfg=full, as_of=dt.date(2024, 10, 1), workdir=tmp_path, tracking=False,
        tables=load_tables(generated_operator),
    )  # fmt: skip
    sample = ctx.bounded_sample(800)
    assert sample is not None and ctx.bounded_sample(10**9) is None
    cut = dt.date(2024, 10, 1) - dt.timedelta(days=90)
    everyone, part = ctx.profiles.get(cut), ctx.profiles.get(cut, sample)
    assert 400 < part.height < 0.5 * everyone.height
    assert manifest["valuation"]["holdout"]["n_customers"] <= part.height
    scores = pl.read_parquet(out / "scores.parquet")
    assert scores.height == ctx.profiles.get(ctx.as_of).height
    assert scores["churn_probability"].null_count() == 0


def _counting_cache(
    as_of: dt.date, spill: Path | None = None
) -> tuple[ProfileCache, list[tuple[dt.date, object]]]:
    """A profile cache whose builder records what it was asked to build."""
    from crm_engine.config import FeaturesConfig

    built: list[tuple[dt.date, object]] = []

    def build(tables: object, cut: dt.date, cfg: object, sample: object = None) -> pl.DataFrame:
        built.append((cut, sample))
        return pl.DataFrame({"customer_id": [len(built)], "x": [0.5]})

    tables = {"customers": pl.LazyFrame()}
    return ProfileCache(tables, as_of, FeaturesConfig(), build, spill), built


def test_a_spilled_profile_at_as_of_is_built_once_and_held_by_nobody(tmp_path: Path) -> None:
    """With a spill directory everyone's profile at as_of is built once, written there, and
    each get is a copy of its own (what a stage frees when done), the same rows every time;
    the catalog's plan reads the same file; earlier cuts stay cached in memory."""
    from polars.testing import assert_frame_equal

    from features.sample import CustomerSample

    as_of, earlier = dt.date(2025, 1, 1), dt.date(2024, 10, 1)
    cache, built = _counting_cache(as_of, tmp_path / "spill")
    first = cache.get(as_of)
    again = cache.get(as_of)
    assert again is not first and len(built) == 1
    assert_frame_equal(again, first)
    plan = cache.everyone()
    assert isinstance(plan, pl.LazyFrame)
    assert_frame_equal(plan.collect(), first)
    assert [p.parent for p in (tmp_path / "spill").iterdir()] == [tmp_path / "spill"]
    sample = CustomerSample(share=0.5)
    assert cache.get(earlier, sample) is cache.get(earlier, sample) and len(built) == 2
    in_memory, _ = _counting_cache(as_of)
    assert in_memory.get(as_of) is in_memory.get(as_of)
    assert_frame_equal(in_memory.everyone().collect(), first)


def test_inputs_hashed_beside_the_run_are_those_hashed_at_the_end(tiny_data: Path) -> None:
    """The manifest's input fingerprints, hashed on a thread from the start of the run, are
    the ones computed after it."""
    from pipelines.manifest import InputHashing, input_fingerprints

    rows = {"customers": 3}
    assert InputHashing(tiny_data, rows).result() == input_fingerprints(tiny_data, rows)


def test_releasing_earlier_profiles_keeps_the_one_at_as_of() -> None:
    from features.sample import CustomerSample

    as_of, earlier = dt.date(2025, 1, 1), dt.date(2024, 10, 1)
    cache, built = _counting_cache(as_of)
    sample = CustomerSample(share=0.5)
    cache.get(as_of)
    cache.get(earlier, sample)
    cache.get(as_of, sample)
    assert len(built) == 3
    cache.release_before(as_of)
    cache.get(as_of)  # still cached
    cache.get(as_of, sample)
    assert len(built) == 3
    cache.get(earlier, sample)  # built again
    assert built[-1] == (earlier, sample) and len(built) == 4


def test_taking_a_profile_hands_it_over() -> None:
    """A taken earlier cut leaves the cache (the churn frames hold the only copy), a cut not
    cached is built without being cached, and the profile at as_of stays cached."""
    from features.sample import CustomerSample

    as_of, earlier, earliest = dt.date(2025, 1, 1), dt.date(2024, 10, 1), dt.date(2024, 7, 1)
    cache, built = _counting_cache(as_of)
    sample = CustomerSample(share=0.5)
    cached = cache.get(earlier, sample)  # a valuation holdout, say
    assert cache.take(earlier, sample) is cached and len(built) == 1
    cache.take(earlier, sample)  # gone from the cache: built again
    cache.take(earliest, sample)
    cache.take(earliest, sample)
    assert built == [(earlier, sample), (earlier, sample), (earliest, sample), (earliest, sample)]
    whole = cache.take(as_of)
    assert cache.get(as_of) is whole and cache.take(as_of) is whole
    assert len(built) == 5


def test_the_training_stage_s_point_in_time_hands_the_earlier_cuts_over(tmp_path: Path) -> None:
    """The point in time a training stage gets takes its cuts out of the run's cache, and its
    release forgets the earlier cuts other stages left there; a stage that only shares gets
    the cached profiles and a release that keeps them."""
    from crm_engine.config import PipelineConfig

    as_of, earlier, earliest = dt.date(2025, 1, 1), dt.date(2024, 10, 1), dt.date(2024, 7, 1)
    built: list[dt.date] = []

    def build(tables: object, cut: dt.date, cfg: object, sample: object = None) -> pl.DataFrame:
        built.append(cut)
        return pl.DataFrame({"customer_id": [len(built)]})

    ctx = StageContext(
        cfg=PipelineConfig(), as_of=as_of, workdir=tmp_path, tracking=False,
        tables={"customers": pl.LazyFrame({"customer_id": [1, 2]}),
                "transactions": pl.LazyFrame({"ts": [dt.datetime(2024, 1, 1)]})},
        build_profile=build,
    )  # fmt: skip
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.as_of = earlier  # type: ignore[misc]
    shared = ctx.point_in_time(10**6)
    assert shared.sample is None and shared.start.first_day == dt.date(2024, 1, 1)
    holdout = shared.profile_at(earlier, None)
    shared.profile_at(earliest, None)
    shared.release()  # a stage that shares keeps the cache as it is
    assert shared.profile_at(earlier, None) is holdout and built == [earlier, earliest]
    training = ctx.point_in_time(10**6, hand_over=True)
    assert training.profile_at(earlier, None) is holdout  # handed over: gone from the cache
    training.release()  # frames built: the earliest cut's profile is forgotten too
    ctx.profiles.get(earliest)
    ctx.profiles.get(earlier)
    assert built == [earlier, earliest, earliest, earlier]
