"""Segment profile table: size, value, risk, who is in it and what sets it apart."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import polars as pl

from crm_engine.feature_labels import feature_label, plain_label
from crm_engine.parts import FrameParts, Parts
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


def _top_values(counts: pl.DataFrame, column: str, segments: pl.Series) -> pl.DataFrame:
    """``segment_id`` -> "a (41%), b (30%), c (12%)" for the most common values of ``column``,
    from :func:`_value_counts` of every slice (null for every segment without the column)."""
    counts = counts.filter(pl.col("column") == column)
    if counts.is_empty():
        return pl.DataFrame({"segment_id": segments}).with_columns(
            pl.lit(None, pl.String).alias(column)
        )
    top = (
        counts.group_by("segment_id", pl.col("value").alias(column))
        .agg(pl.col("n").sum())
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
    return top.group_by("segment_id", maintain_order=True).agg(
        pl.col("_item").str.join(", ").alias(column)
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
    assignments: pl.DataFrame | Parts,
    profile: pl.DataFrame | pl.LazyFrame | Parts,
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
        the columns are streamed through the aggregates, never held. Both may be
        :class:`~crm_engine.parts.Parts` of the same customers (on the executors with
        Spark): the table is then added up from each part's sums where it lies.
    features
        Features considered for "what sets it apart" (categorical ones are ignored).
    scores
        Optional ``customer_id`` with ``clv`` and/or ``churn_probability`` (in memory); their
        segment means are null when absent.

    Returns
    -------
    polars.DataFrame
        ``distinguishing`` lists the three numeric features furthest from the population
        (standardised, on the log scale for heavy-tailed amounts), e.g.
        ``"data use 3.1x average; age 21 years above average; complaints 0.4x average"``.
    """
    people = profile if isinstance(profile, Parts) else FrameParts(profile.lazy())
    names = people.plan().collect_schema().names()
    numeric = [
        f for f in features if f not in CATEGORICAL_COLUMNS and f in names and f != "customer_id"
    ]
    extra = [c for c in ("revenue_365d", "occupation", "region") if c in names]
    cols = list(dict.fromkeys(["customer_id", *extra, *numeric]))
    # the stage's own assignments (the profile's rows, in its order) go beside the profile's
    # columns (built first, a join copied ~15 columns of everyone, 1.2 GB at 10M customers)
    segments = assignments if isinstance(assignments, Parts) else FrameParts(assignments)
    frame = segments.select(["customer_id", "segment_id", "segment_name"]).join(people.select(cols))
    value_cols = []
    if scores is not None:
        value_cols = [c for c in ("clv", "churn_probability") if c in scores.columns]
        if value_cols:
            frame = frame.join(FrameParts(scores.select("customer_id", *value_cols)))
    means = [c for c in ("revenue_365d", "clv", "churn_probability") if c in [*extra, *value_cols]]
    sums = frame.aggregate(functools.partial(_segment_sums, means=means, numeric=numeric))
    seg, pop = _combined(sums, means, numeric)
    total = int(seg.get_column("size").sum())

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
        *[
            (pl.col(f"{c}_mean") if c in means else pl.lit(None, pl.Float64)).alias(f"{c}_mean")
            for c in ("revenue_365d", "clv", "churn_probability")
        ],
    ).with_columns(pl.Series("distinguishing", texts, dtype=pl.String))
    texts_in = [c for c in ("occupation", "region") if c in names]
    counts = frame.aggregate(functools.partial(_value_counts, columns=texts_in))
    for column, name in (("occupation", "top_occupations"), ("region", "top_regions")):
        top = _top_values(counts, column, seg.get_column("segment_id")).rename({column: name})
        out = out.join(top, on="segment_id", how="left")
    return out.select([pl.col(c).cast(dtype) for c, dtype in PROFILE_SCHEMA.items()]).sort(
        "segment_id"
    )


def _transformed(f: str) -> pl.Expr:
    """A feature as "what sets a segment apart" compares it (log scale for heavy tails)."""
    x = pl.col(f).cast(pl.Float64)
    return x.clip(0.0).log1p() if is_heavy_tailed(f) else x


def _segment_sums(
    frame: pl.DataFrame, means: Sequence[str], numeric: Sequence[str]
) -> pl.DataFrame:
    """A slice's sums per segment, which :func:`_combined` adds up: its customers, and per
    column (``means``, each numeric feature as it is and :func:`_transformed`) the values
    known (``<c>:n``), their sum and (transformed) their squared deviations from the slice's
    segment mean (``<c>:m2``)."""
    aggs: list[pl.Expr] = [
        pl.len().cast(pl.Int64).alias("size"),
        pl.first("segment_name").alias("segment_name"),
    ]
    columns = [(c, pl.col(c).cast(pl.Float64), False) for c in means]
    columns += [(f"_raw_{f}", pl.col(f).cast(pl.Float64), False) for f in numeric]
    columns += [(f"_t_{f}", _transformed(f), True) for f in numeric]
    for name, x, deviations in columns:
        aggs += [x.count().cast(pl.Int64).alias(f"{name}:n"), x.sum().alias(f"{name}:sum")]
        if deviations:
            aggs.append(((x - x.mean()) ** 2).sum().alias(f"{name}:m2"))
    return frame.group_by("segment_id").agg(aggs)


def _combined(
    sums: pl.DataFrame, means: Sequence[str], numeric: Sequence[str]
) -> tuple[pl.DataFrame, dict[str, float | None]]:
    """:func:`_segment_sums` of every slice added up: per segment its size and means
    (``<c>_mean``, ``_raw_<f>``, ``_t_<f>``); and the population's means of each feature
    (``_raw_<f>``, ``_tm_<f>``) and standard deviation of its transformed values
    (``_ts_<f>``, the slices' squared deviations merged as Chan et al. merge them)."""

    def mean(name: str) -> pl.Expr:
        n = pl.col(f"{name}:n").sum()
        return pl.when(n > 0).then(pl.col(f"{name}:sum").sum() / n).otherwise(None)

    by_segment = [(c, f"{c}_mean") for c in means]
    by_segment += [(f"_raw_{f}", f"_raw_{f}") for f in numeric]
    by_segment += [(f"_t_{f}", f"_t_{f}") for f in numeric]
    seg = (
        sums.group_by("segment_id")
        .agg(
            pl.col("size").sum(),
            pl.col("segment_name").first(),
            *[mean(name).alias(alias) for name, alias in by_segment],
        )
        .sort("segment_id")
    )
    pop: dict[str, float | None] = {}
    for f in numeric:
        raw, t = sums.select(mean(f"_raw_{f}")).item(), sums.select(mean(f"_t_{f}")).item()
        n = sums.get_column(f"_t_{f}:n").cast(pl.Float64)
        known = n.sum()
        m2 = None
        if t is not None and known > 1:
            part_mean = sums.get_column(f"_t_{f}:sum") / n.replace(0.0, None)
            spread = (n * (part_mean - t) ** 2).fill_null(0.0).sum()
            m2 = float(sums.get_column(f"_t_{f}:m2").fill_null(0.0).sum() + spread)
        pop[f"_raw_{f}"], pop[f"_tm_{f}"] = raw, t
        pop[f"_ts_{f}"] = math.sqrt(m2 / (known - 1)) if m2 is not None else None
    return seg, pop


def _value_counts(frame: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    """A slice's customers by segment and value of each text column (null as ``unknown``):
    ``segment_id, column, value, n``."""
    counts = [
        frame.group_by("segment_id", pl.col(c).cast(pl.String).fill_null("unknown").alias("value"))
        .agg(pl.len().cast(pl.Int64).alias("n"))
        .select("segment_id", pl.lit(c).alias("column"), "value", "n")
        for c in columns
    ]
    schema = {"segment_id": pl.Int64, "column": pl.String, "value": pl.String, "n": pl.Int64}
    return pl.concat(counts) if counts else pl.DataFrame(schema=schema)
