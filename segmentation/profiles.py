"""Segment profile table: size, value, risk, who is in it and what sets it apart."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from crm_engine.feature_labels import feature_label, plain_label
from segmentation.preprocess import CATEGORICAL_COLUMNS, is_heavy_tailed

PROFILE_SCHEMA = pl.Schema(
    {
        "segment_id": pl.Int64(),
        "segment_name": pl.String(),
        "size": pl.Int64(),
        "share": pl.Float64(),
        "revenue_365d_mean": pl.Float64(),
        "clv_mean": pl.Float64(),
        "churn_probability_mean": pl.Float64(),
        "top_occupations": pl.String(),
        "top_regions": pl.String(),
        "distinguishing": pl.String(),
    }
)

_TOP_N = 3
_N_DISTINGUISHING = 3


def _top_values(frame: pl.LazyFrame, column: str) -> pl.DataFrame:
    """``segment_id`` -> "a (41%), b (30%), c (12%)" for the most common values of ``column``."""
    if column not in frame.collect_schema().names():
        return (
            frame.select("segment_id")
            .unique()
            .with_columns(pl.lit(None, pl.String).alias(column))
            .collect(engine="streaming")
        )
    counts = (
        frame.select("segment_id", pl.col(column).cast(pl.String).fill_null("unknown"))
        .group_by("segment_id", column)
        .agg(pl.len().cast(pl.Int64).alias("n"))
        .with_columns((pl.col("n") / pl.col("n").sum().over("segment_id")).alias("p"))
        .sort(["segment_id", "n", column], descending=[False, True, False])
        .group_by("segment_id", maintain_order=True)
        .head(_TOP_N)
        .with_columns(
            pl.format(
                "{} ({}%)", pl.col(column), (pl.col("p") * 100).round(0).cast(pl.Int64)
            ).alias("_item")
        )
    )
    return (
        counts.group_by("segment_id", maintain_order=True)
        .agg(pl.col("_item").str.join(", ").alias(column))
        .collect(engine="streaming")
    )


def _describe(feature: str, seg_mean: float, pop_mean: float) -> str:
    label = plain_label(feature)
    spec = feature_label(feature)
    if pop_mean > 0 and seg_mean >= 0:
        ratio = seg_mean / pop_mean
        if spec is not None and spec.unit in ("years", "days"):
            unit = spec.unit
            diff = seg_mean - pop_mean
            word = "above" if diff >= 0 else "below"
            return f"{label} {abs(diff):.0f} {unit} {word} average"
        return f"{label} {ratio:.1f}x average"
    diff = seg_mean - pop_mean
    return f"{label} {diff:+.2g} vs average"


def segment_profiles(
    assignments: pl.DataFrame,
    profile: pl.DataFrame | pl.LazyFrame,
    features: Sequence[str],
    scores: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One row per segment, sorted by ``segment_id`` (schema :data:`PROFILE_SCHEMA`).

    Parameters
    ----------
    assignments
        ``customer_id``, ``segment_id``, ``segment_name``.
    profile
        Customer profile with ``customer_id``, ``revenue_365d``, ``occupation``, ``region``
        and the numeric features to compare; of a plan (the run's profile waits in a file)
        the columns are streamed through the aggregates, never held.
    features
        Features considered for "what sets it apart" (categorical ones are ignored).
    scores
        Optional ``customer_id`` with ``clv`` and/or ``churn_probability``; their segment
        means are null when absent.

    Returns
    -------
    polars.DataFrame
        ``distinguishing`` lists the three numeric features furthest from the population
        (standardised, on the log scale for heavy-tailed amounts), e.g.
        ``"data use 3.1x average; age 21 years above average; complaints 0.4x average"``.
    """
    names = profile.collect_schema().names()
    numeric = [
        f for f in features if f not in CATEGORICAL_COLUMNS and f in names and f != "customer_id"
    ]
    extra = [c for c in ("revenue_365d", "occupation", "region") if c in names]
    cols = list(dict.fromkeys(["customer_id", *extra, *numeric]))
    # the stage's own assignments (the profile's rows, in its order) go beside the profile's
    # columns; others are joined lazily (built first, the join copied ~15 columns of everyone,
    # 1.2 GB at 10M customers, and a lazy join still builds a table of one side)
    segments = assignments.select("customer_id", "segment_id", "segment_name")
    ids = profile.lazy().select("customer_id").collect().get_column("customer_id")
    if segments.get_column("customer_id").equals(ids):
        frame = pl.concat(
            [segments.drop("customer_id").lazy(), profile.lazy().select(cols)], how="horizontal"
        )
    else:
        frame = segments.lazy().join(profile.lazy().select(cols), on="customer_id", how="left")
    value_cols = []
    if scores is not None:
        value_cols = [c for c in ("clv", "churn_probability") if c in scores.columns]
        if value_cols:
            frame = frame.join(
                scores.lazy().select("customer_id", *value_cols), on="customer_id", how="left"
            )
    total = assignments.height

    def t(f: str) -> pl.Expr:
        x = pl.col(f).cast(pl.Float64)
        return x.clip(0.0).log1p() if is_heavy_tailed(f) else x

    agg = [
        pl.len().cast(pl.Int64).alias("size"),
        pl.first("segment_name").alias("segment_name"),
        (
            pl.col("revenue_365d").cast(pl.Float64).mean()
            if "revenue_365d" in cols
            else pl.lit(None, pl.Float64)
        ).alias("revenue_365d_mean"),
        *[
            (
                pl.col(c).cast(pl.Float64).mean() if c in value_cols else pl.lit(None, pl.Float64)
            ).alias(f"{c}_mean")
            for c in ("clv", "churn_probability")
        ],
        *[pl.col(f).cast(pl.Float64).mean().alias(f"_raw_{f}") for f in numeric],
        *[t(f).mean().alias(f"_t_{f}") for f in numeric],
    ]
    seg = frame.group_by("segment_id").agg(agg).sort("segment_id").collect(engine="streaming")
    pop = (
        frame.select(
            *[pl.col(f).cast(pl.Float64).mean().alias(f"_raw_{f}") for f in numeric],
            *[t(f).mean().alias(f"_tm_{f}") for f in numeric],
            *[t(f).std().alias(f"_ts_{f}") for f in numeric],
        )
        .collect(engine="streaming")
        .row(0, named=True)
    )

    texts = []
    for row in seg.iter_rows(named=True):
        ranked = []
        for f in numeric:
            sd, tm, tv = pop[f"_ts_{f}"], pop[f"_tm_{f}"], row[f"_t_{f}"]
            if sd is None or sd <= 0 or tv is None or tm is None:
                continue
            ranked.append((abs(tv - tm) / sd, f))
        ranked.sort(key=lambda x: (-x[0], x[1]))
        parts = [
            _describe(f, row[f"_raw_{f}"], pop[f"_raw_{f}"])
            for z, f in ranked[:_N_DISTINGUISHING]
            if np.isfinite(z) and row[f"_raw_{f}"] is not None and pop[f"_raw_{f}"] is not None
        ]
        texts.append("; ".join(parts) if parts else "close to average on every feature")

    out = seg.select(
        "segment_id",
        "segment_name",
        "size",
        (pl.col("size") / max(total, 1)).alias("share"),
        "revenue_365d_mean",
        "clv_mean",
        "churn_probability_mean",
    ).with_columns(pl.Series("distinguishing", texts, dtype=pl.String))
    for column, name in (("occupation", "top_occupations"), ("region", "top_regions")):
        top = _top_values(frame, column).rename({column: name})
        out = out.join(top, on="segment_id", how="left")
    return out.select([pl.col(c).cast(dtype) for c, dtype in PROFILE_SCHEMA.items()]).sort(
        "segment_id"
    )
