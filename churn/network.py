"""What a customer's leaving costs through the call graph: the network value of everyone,
computed where the churn scores lie.

If customer ``i`` leaves, each contact ``j`` (``n_j`` contacts) sees its share of contacts gone
rise by ``1 / n_j`` for the contagion window, so the extra probability that ``j`` leaves is
``(1 - h_j)^w - (1 - h'_j)^w`` with ``h_j`` the monthly hazard implied by ``j``'s churn
probability, ``h'_j = sigmoid(logit(h_j) + coefficient / n_j)`` and ``w`` the window in months
(the coefficient: :class:`churn.contagion.Contagion`). ``network_value_i`` sums that times
``clv_j`` over ``i``'s contacts. Without evidence of contagion (the 95% interval reaches 0) the
effect used is 0 and every network value is 0.

:func:`with_network_value` computes it part by part: each part's :func:`contact_losses`, summed
over the contacts where the graph lies (:class:`ContactGraph`: an :class:`EdgeList` here, the
Spark backend's graph on the executors), each part reading back its own customers' sums
(:class:`ContactSums`, :func:`network_columns`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

import polars as pl

from churn.contagion import DAYS_PER_MONTH, Contagion
from churn.scoring import LOST_BAND
from crm_engine.parts import FrameParts, Parts, gather_rows, top_rows
from features.sample import bucket_expr

__all__ = [
    "POINTS_SEED",
    "ContactGraph",
    "ContactSums",
    "EdgeList",
    "contact_losses",
    "network_columns",
    "network_points",
    "network_values",
    "with_network_value",
]


@dataclass(frozen=True)
class ContactSums:
    """Per node of the call graph, the sum of a value over its contacts, where the graph put it:
    ``plan`` (``customer_id``, ``value``; a frame here, the executors' Parquet with Spark). With
    ``buckets``, the plan is split by the customers' buckets (:func:`features.sample.bucket_expr`)
    in ``bucket_column``, so a part of the scores (a bucket's customers) reads only its own."""

    plan: pl.LazyFrame
    buckets: int | None = None
    bucket_column: str = "_bucket"

    def of(self, ids: pl.DataFrame) -> pl.DataFrame:
        """``customer_id``, ``value`` of the customers of ``ids`` (a ``customer_id`` column)
        with a valued contact."""
        plan = self.plan
        if self.buckets is not None:
            mine = ids.select(bucket_expr(self.buckets).unique().cast(pl.Int64)).to_series()
            plan = plan.filter(pl.col(self.bucket_column).cast(pl.Int64).is_in(mine.to_list()))
        id_dtype = ids.schema["customer_id"]
        return (
            plan.select(pl.col("customer_id").cast(id_dtype), pl.col("value").cast(pl.Float64))
            .join(ids.lazy().select("customer_id"), on="customer_id", how="semi")
            .collect()
        )


class ContactGraph(Protocol):
    """The undirected call graph at ``as_of`` as :func:`with_network_value` reads it, wherever
    it lies: an :class:`EdgeList` here, or the Spark backend's graph on the executors."""

    def sum_over_contacts(self, values: Parts) -> ContactSums:
        """Per node, the sum of ``values``' ``value`` (``contact_id``, ``value``: where they
        lie) over its contacts, where the graph lies; nodes without a valued contact left
        out."""
        ...


@dataclass(frozen=True)
class EdgeList:
    """A :class:`ContactGraph` of an edge list in Polars
    (:func:`features.influence.undirected_edges`: each pair in both directions)."""

    edges: pl.LazyFrame

    def degrees(self) -> pl.LazyFrame:
        """``customer_id``, ``n_contacts``: one row per node (a run reads the profile's
        ``n_contacts`` instead, the same counts, without a second pass over the calls)."""
        return self.edges.group_by("customer_id").agg(pl.len().cast(pl.Float64).alias("n_contacts"))

    def sum_over_contacts(self, values: Parts) -> ContactSums:
        plan = values.plan()
        id_dtype = plan.collect_schema()["contact_id"]
        summed = (
            self.edges.select("customer_id", pl.col("contact_id").cast(id_dtype))
            .join(plan, on="contact_id", how="inner")
            .group_by("customer_id")
            .agg(pl.col("value").sum())
            .collect()
        )
        return ContactSums(summed.lazy())


def contact_losses(
    batch: pl.DataFrame, *, effect: float, window_months: float, horizon_days: int
) -> pl.DataFrame:
    """``contact_id``, ``value``: what each valued customer of a slice with contacts would
    cost if one of their contacts left (see the module docstring), for a contagion ``effect``
    (:attr:`Contagion.effect`) over ``window_months``. The slice holds ``customer_id``,
    ``churn_probability`` over ``horizon_days``, ``clv`` (null: a lost or unvalued customer,
    nobody's loss) and ``n_contacts``. The per-customer half of :func:`with_network_value`."""
    p = pl.col("churn_probability").clip(0.0, 1.0 - 1e-12)
    hazard = 1.0 - (1.0 - p).pow(DAYS_PER_MONTH / horizon_days)
    logit = (hazard / (1.0 - hazard)).log()
    n_contacts = pl.col("n_contacts").cast(pl.Float64)
    lifted = 1.0 / (1.0 + (-(logit + effect / n_contacts)).exp())
    return batch.filter(
        pl.col("clv").is_not_null()
        & pl.col("churn_probability").is_not_null()
        & (n_contacts > 0).fill_null(False)
    ).select(
        pl.col("customer_id").alias("contact_id"),
        (((1.0 - hazard).pow(window_months) - (1.0 - lifted).pow(window_months)) * pl.col("clv"))
        .clip(lower_bound=0.0)
        .cast(pl.Float64)
        .alias("value"),
    )


def network_columns(batch: pl.DataFrame, *, sums: ContactSums) -> pl.DataFrame:
    """A slice of the churn scores with ``network_value`` (its customers' rows of ``sums``,
    0 without one) and ``value_at_risk_network`` (``churn_probability x network_value``, 0
    for a lost customer) filled in, or added after its columns when absent."""
    lost = pl.col("churn_risk_band") == LOST_BAND
    columns = batch.columns
    found = sums.of(batch).rename({"value": "network_value"})
    out = (
        batch.drop("network_value", "value_at_risk_network", strict=False)
        .join(found, on="customer_id", how="left", maintain_order="left")
        .with_columns(pl.col("network_value").fill_null(0.0))
        .with_columns(
            pl.when(lost)
            .then(0.0)
            .otherwise(pl.col("churn_probability") * pl.col("network_value"))
            .alias("value_at_risk_network")
        )
    )
    return out.select(list(dict.fromkeys([*columns, *out.columns])))


def with_network_value(
    scores: Parts,
    valued: Parts,
    degrees: Parts,
    graph: ContactGraph,
    contagion: Contagion,
    horizon_days: int,
) -> Parts:
    """``scores`` (the churn stage's ``customer_id, churn_probability, churn_risk_band, ...``)
    with the network columns (:func:`network_columns`), computed where the parts lie: each
    part's :func:`contact_losses`, summed over the contacts where the graph lies
    (:meth:`ContactGraph.sum_over_contacts`), each part reading its own customers' sums back.

    Parameters
    ----------
    scores
        The churn scores; lost customers (band ``lost``) have nothing left to lose.
    valued
        The valuation's ``customer_id, clv`` of the same customers in the same parts.
    degrees
        ``customer_id, n_contacts`` of the same customers in the same parts (a run: its
        profile's).
    graph
        The undirected call graph at ``as_of``.
    contagion
        The fitted effect (:attr:`Contagion.effect` is used: 0 without evidence, and every
        network value 0).
    horizon_days
        The window ``churn_probability`` covers.
    """
    lost = pl.col("churn_risk_band") == LOST_BAND
    losses = (
        scores.select(["customer_id", "churn_probability", "churn_risk_band"])
        .join(valued.select(["customer_id", "clv"]))
        .join(degrees.select(["customer_id", "n_contacts"]))
        .with_columns(pl.when(lost).then(None).otherwise(pl.col("clv")).alias("clv"))
        .map(
            functools.partial(
                contact_losses,
                effect=contagion.effect,
                window_months=contagion.window_months,
                horizon_days=horizon_days,
            )
        )
    )
    sums = graph.sum_over_contacts(losses)
    return scores.map(functools.partial(network_columns, sums=sums))


POINTS_SEED = 0x9017
"""Seed of the hash of ``customer_id`` that spreads :func:`network_points` over everyone."""


def network_points(scores: Parts, max_points: int = 5_000) -> pl.DataFrame:
    """``value_at_risk``, ``value_at_risk_network`` of at most ``max_points`` customers of
    ``scores`` (with the network columns) with both positive, for the picture
    (:func:`churn.plots.plot_network_value`): a fifth the largest in total, the rest a spread of
    the others (those least by a hash of ``customer_id``), chosen where the parts lie
    (:func:`crm_engine.parts.top_rows`), only these rows gathered."""
    both = (pl.col("value_at_risk") > 0) & (pl.col("value_at_risk_network") > 0)
    total = pl.col("value_at_risk") + pl.col("value_at_risk_network")
    top = top_rows(scores, total, max_points // 5, among=both)
    spread = -(pl.col("customer_id").hash(seed=POINTS_SEED) // 2048).cast(pl.Float64)
    rest = top_rows(scores, spread, max_points - max_points // 5, among=both & ~top)
    columns = ["value_at_risk", "value_at_risk_network"]
    return gather_rows(scores, top | rest, columns).sort(columns)  # the same on any backend


def network_values(
    edges: pl.LazyFrame,
    scored: pl.DataFrame,
    contagion: Contagion,
    horizon_days: int,
) -> pl.DataFrame:
    """``customer_id``, ``network_value`` (>= 0; 0 without contacts or contagion) of each
    customer of ``scored`` (``customer_id``, ``churn_probability`` over ``horizon_days``,
    ``clv``: a null clv or probability is nobody's loss) over the call graph ``edges``
    (:func:`features.influence.undirected_edges`): :func:`with_network_value` of frames."""
    graph = EdgeList(edges)
    scores = scored.select(
        "customer_id", "churn_probability", pl.lit("", pl.String).alias("churn_risk_band")
    )
    out = with_network_value(
        FrameParts(scores),
        FrameParts(scored.select("customer_id", "clv")),
        FrameParts(graph.degrees()),
        graph,
        contagion,
        horizon_days,
    )
    return out.plan().select("customer_id", "network_value").collect()
