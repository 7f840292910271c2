"""Who our customers are: segment cards, dimension heatmaps and segment migration."""

from __future__ import annotations

import html
from typing import Any

import polars as pl

from crm_engine.parts import group_sums
from crm_engine.report.charts import figure, heatmap
from crm_engine.report.formatting import html_table, money
from crm_engine.report.inputs import ReportInputs, currency_label
from crm_engine.report.section import Section
from crm_engine.report.views import dimension_orders


def _segment_cards(inp: ReportInputs) -> str:
    """One card per behavioural segment: size, value, risk and what sets it apart."""
    cur = currency_label(inp)
    means = {
        "clv": ("clv_mean", pl.col("clv")),
        "churn_probability": ("churn_mean", pl.col("churn_probability")),
        "loyalty_class": ("promoters", (pl.col("loyalty_class") == "promoter").cast(pl.Int64)),
    }
    ran = [c for c in ("clv", "churn_probability", "value_at_risk", "loyalty_class") if inp.has(c)]
    sums = [
        (pl.col(c) if c not in means else means[c][1]).cast(pl.Float64).alias(c) for c in ran
    ] + [pl.col(c).is_not_null().cast(pl.Int64).alias(f"{c}:n") for c in ran if c in means]
    found = group_sums(inp.parts, [pl.col("segment_id"), pl.col("segment_name")], sums)
    stats = found.select(
        "segment_id",
        "segment_name",
        pl.col("n").alias("customers"),
        *(
            pl.col(c).alias("var_sum")
            if c == "value_at_risk"
            else pl.when(pl.col(f"{c}:n") > 0).then(pl.col(c) / pl.col(f"{c}:n")).alias(means[c][0])
            for c in ran
        ),
    ).sort(["customers", "segment_id"], descending=[True, False])
    profiles: dict[int, dict[str, Any]] = {}
    if inp.segment_profiles is not None and "segment_id" in inp.segment_profiles.columns:
        profiles = {r["segment_id"]: r for r in inp.segment_profiles.iter_rows(named=True)}
    total = max(inp.height, 1)
    cards = []
    for row in stats.iter_rows(named=True):
        prof = profiles.get(row["segment_id"], {})
        facts = [("customers", f"{row['customers']:,} ({row['customers'] / total:.0%})")]
        if prof.get("revenue_365d_mean") is not None:
            facts.append((f"revenue, last 12 months ({cur})", money(prof["revenue_365d_mean"])))
        if row.get("clv_mean") is not None:
            facts.append((f"mean CLV ({cur})", money(row["clv_mean"])))
        if row.get("churn_mean") is not None:
            facts.append(("mean churn probability", f"{row['churn_mean']:.1%}"))
        if row.get("var_sum") is not None:
            facts.append((f"value at risk ({cur})", money(row["var_sum"])))
        if row.get("promoters") is not None:
            facts.append(("promoters (predicted)", f"{row['promoters']:.0%}"))
        dl = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts)
        texts = []
        for key, title in (
            ("distinguishing", "Stands out by"),
            ("top_occupations", "Occupations"),
            ("top_regions", "Regions"),
        ):
            if prof.get(key):
                texts.append(f"<p><b>{title}:</b> {html.escape(str(prof[key]))}</p>")
        name = row["segment_name"] or f"Segment {row['segment_id']}"
        cards.append(
            f"<div class='seg'><h3>{html.escape(str(name))}</h3><dl>{dl}</dl>{''.join(texts)}</div>"
        )
    return f"<div class='segcards' id='segment-cards'>{''.join(cards)}</div>"


def body(inp: ReportInputs) -> str:
    """Who our customers are: segments, dimension heatmaps, migration."""
    s, cur = inp.parts, currency_label(inp)
    parts: list[str] = []
    if inp.has("segment_id"):
        parts.append("<h3>Behavioural segments</h3>")
        parts.append(_segment_cards(inp))
    else:
        parts.append("<p class='muted'>Segmentation stage not run.</p>")
    grid = []
    orders = dimension_orders(inp.age_bands)
    if inp.has("spend_level") and inp.has("age_band"):
        img = heatmap(s, "spend_level", "age_band", "Customers by spend level and age band", orders)
        if img:
            grid.append(figure(img, "Spend level x age band (customer counts)"))
    if inp.has("region") and inp.has("area_type"):
        img = heatmap(s, "region", "area_type", "Customers by region and area", orders)
        if img:
            grid.append(figure(img, "Region x area (customer counts)"))
    if grid:
        parts.append(f"<div class='grid'>{''.join(grid)}</div>")
    if inp.migration is not None and inp.migration.height:
        parts.append(_migration(inp.migration, cur))
    return "".join(parts)


def _migration(migration: pl.DataFrame, cur: str) -> str:
    """How many customers kept their segment since the previous run, and the largest moves."""
    head = "<h3>Segment migration since the previous run</h3>"
    cols = {"previous_segment_id", "segment_id", "customers"}
    if not cols <= set(migration.columns):
        return head + html_table(migration, cur)
    total = int(migration["customers"].sum())
    stayed = int(
        migration.filter(pl.col("previous_segment_id") == pl.col("segment_id"))["customers"].sum()
    )
    moves = migration.filter(pl.col("previous_segment_id") != pl.col("segment_id")).sort(
        "customers", descending=True
    )
    keep = [
        c
        for c in ("previous_segment_name", "segment_name", "customers", "share_of_previous")
        if c in moves.columns
    ]
    return (
        head + f"<p>{stayed:,} of {total:,} customers ({stayed / max(total, 1):.0%}) kept their "
        "segment; the largest moves:</p>"
        + html_table(moves.select(keep), cur, max_rows=12, titles={"segment_name": "New segment"})
    )


SECTION = Section("segments", "Who our customers are", body)
