"""Who our customers are: segment cards, dimension heatmaps and segment migration."""

from __future__ import annotations

import html
from typing import Any

import polars as pl

from crm_engine.report.charts import figure, heatmap
from crm_engine.report.formatting import html_table, money
from crm_engine.report.inputs import ReportInputs, currency_label, has_values
from crm_engine.report.section import Section
from crm_engine.report.views import dimension_orders


def _segment_cards(inp: ReportInputs) -> str:
    """One card per behavioural segment: size, value, risk and what sets it apart."""
    s, cur = inp.scores, currency_label(inp)
    aggs: list[pl.Expr] = [
        pl.len().cast(pl.Int64).alias("customers"),
        pl.col("segment_name").first(),
    ]
    for c, expr in (
        ("clv", pl.col("clv").mean().alias("clv_mean")),
        ("churn_probability", pl.col("churn_probability").mean().alias("churn_mean")),
        ("value_at_risk", pl.col("value_at_risk").sum().alias("var_sum")),
        ("loyalty_class", (pl.col("loyalty_class") == "promoter").mean().alias("promoters")),
    ):
        if has_values(s, c):
            aggs.append(expr)
    stats = s.lazy().group_by("segment_id").agg(aggs).sort("customers", descending=True).collect()
    profiles: dict[int, dict[str, Any]] = {}
    if inp.segment_profiles is not None and "segment_id" in inp.segment_profiles.columns:
        profiles = {r["segment_id"]: r for r in inp.segment_profiles.iter_rows(named=True)}
    total = max(s.height, 1)
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
    s, cur = inp.scores, currency_label(inp)
    parts: list[str] = []
    if has_values(s, "segment_id"):
        parts.append("<h3>Behavioural segments</h3>")
        parts.append(_segment_cards(inp))
    else:
        parts.append("<p class='muted'>Segmentation stage not run.</p>")
    grid = []
    orders = dimension_orders(inp.age_bands)
    if has_values(s, "spend_level") and has_values(s, "age_band"):
        img = heatmap(s, "spend_level", "age_band", "Customers by spend level and age band", orders)
        if img:
            grid.append(figure(img, "Spend level x age band (customer counts)"))
    if has_values(s, "region") and has_values(s, "area_type"):
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
