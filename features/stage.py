"""The profile stage: the point-in-time profile at ``as_of`` and the contract columns it owns."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence

import polars as pl

from crm_engine.contracts import owned_columns, scores_schema
from crm_engine.io import frame_height
from crm_engine.parts import FrameParts, laid_out
from crm_engine.stage_reports import PopulationReport
from features.btyd import rfm_facts
from features.who import population_counts
from pipelines.runner import StageContext, StageOutput


def facts_slice(frame: pl.DataFrame, as_of: dt.date, owned: Sequence[str]) -> pl.DataFrame:
    """The contract columns the profile owns (``owned``, in contract order) of a slice of
    everyone's profile at ``as_of``: its own columns, the RFM facts of its BTYD columns, and
    typed nulls for a column the profile lacks (influence without a calls table)."""
    schema = frame.schema
    full = scores_schema(schema["customer_id"])
    present = [c for c in owned if c in schema and c != "customer_id"]
    facts = frame.select("customer_id", pl.lit(as_of).alias("as_of"), *rfm_facts(), *present)
    return facts.select(
        pl.col(c) if c in facts.columns else pl.lit(None, dtype=full[c]).alias(c) for c in owned
    )


def profile_stage(ctx: StageContext, tables: dict[str, pl.LazyFrame]) -> StageOutput:
    """Point-in-time profile at ``as_of`` and the contract columns the profile owns.

    The profile goes to the catalog as a plan (:meth:`ProfileCache.everyone
    <pipelines.profiles.ProfileCache.everyone>`): the stages after this one collect it when
    they need its rows. The facts are mapped where the profile lies (:func:`facts_slice`;
    with Spark on the executors, the catalog holding the plan of their files), reading only
    their columns."""
    profile = ctx.profiles.everyone()
    schema = profile.collect_schema()
    owned = owned_columns(["features"])
    rfm = [name for e in rfm_facts() for name in e.meta.root_names()]
    reads = list(dict.fromkeys(["customer_id", *rfm, *(c for c in owned if c in schema)]))
    facts_parts = ctx.profiles.map_parts(
        profile, functools.partial(facts_slice, as_of=ctx.as_of, owned=owned), reads
    )
    facts: pl.DataFrame | pl.LazyFrame = laid_out(facts_parts)  # the assembly joins the parts
    if isinstance(facts_parts, FrameParts):  # in memory: the frame, in the profile's row order
        facts = facts.collect()
    n_scored = frame_height(facts)
    counts = population_counts(tables["customers"], ctx.as_of).collect().row(0, named=True)
    report = PopulationReport(
        n_customers=counts["customers"],
        n_scored=n_scored,
        n_churned_before_as_of=counts["churned_before_as_of"],
        n_not_yet_signed_up=counts["not_yet_signed_up"],
    )
    return StageOutput(
        outputs={"profile": profile, "profile_facts": facts},
        metrics={
            "customers": n_scored,
            "columns": len(schema),
            "customers_input": report.n_customers,
            "churned_before_as_of": report.n_churned_before_as_of,
            "not_yet_signed_up": report.n_not_yet_signed_up,
        },
        params={"tables": ",".join(sorted(tables))},
        report=report,
    )
