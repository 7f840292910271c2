"""The profile stage: the point-in-time profile at ``as_of`` and the contract columns it owns."""

from __future__ import annotations

import polars as pl

from crm_engine.contracts import SCORE_COLUMNS, owned_columns
from crm_engine.stage_reports import PopulationReport
from features.btyd import rfm_facts
from features.who import population_counts
from pipelines.runner import StageContext, StageOutput


def profile_stage(ctx: StageContext, tables: dict[str, pl.LazyFrame]) -> StageOutput:
    """Point-in-time profile at ``as_of`` and the contract columns the profile owns.

    The profile goes to the catalog as a plan (:meth:`ProfileCache.everyone
    <pipelines.profiles.ProfileCache.everyone>`): the stages after this one collect it when
    they need its rows."""
    profile = ctx.profiles.everyone()  # only the facts' columns are read
    schema = profile.collect_schema()
    owned = owned_columns(["features"])
    facts = profile.select(
        "customer_id",
        pl.lit(ctx.as_of).alias("as_of"),
        *rfm_facts(),
        *[c for c in owned if c in schema and c != "customer_id"],
    ).collect()
    missing = {
        c.name: pl.lit(None, dtype=c.dtype).alias(c.name)
        for c in SCORE_COLUMNS
        if c.name in owned and c.name not in facts.columns  # influence without a calls table
    }
    facts = facts.with_columns(missing.values()).select(owned)
    counts = population_counts(tables["customers"], ctx.as_of).collect().row(0, named=True)
    report = PopulationReport(
        n_customers=counts["customers"],
        n_scored=facts.height,
        n_churned_before_as_of=counts["churned_before_as_of"],
        n_not_yet_signed_up=counts["not_yet_signed_up"],
    )
    return StageOutput(
        outputs={"profile": profile, "profile_facts": facts},
        metrics={
            "customers": facts.height,
            "columns": len(schema),
            "customers_input": report.n_customers,
            "churned_before_as_of": report.n_churned_before_as_of,
            "not_yet_signed_up": report.n_not_yet_signed_up,
        },
        params={"tables": ",".join(sorted(tables))},
        report=report,
    )
