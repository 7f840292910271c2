"""Churn reasons: top signed TreeSHAP contributions per customer, and global importance."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from crm_engine.contracts import DRIVER_STRUCT
from crm_engine.feature_labels import alias_group, feature_label, format_value, plain_label
from crm_engine.parts import FrameParts, Parts, count_rows, top_rows
from features import OTHER
from features.sample import CustomerSample

DRIVERS_DTYPE = pl.List(DRIVER_STRUCT)
REASONS_DTYPE = pl.List(pl.String())


def whom_to_explain(
    scores: Parts,
    min_probability: float,
    top_n: int,
    key: str = "churn_probability",
    max_rows: int | None = None,
    eligible: pl.Expr | None = None,
) -> pl.Expr:
    """Which customers get reasons, as a boolean expression of a part of ``scores`` (their
    ``customer_id``, ``churn_probability`` and ``key``): probability at or above a threshold,
    or top by ``key``, at most ``max_rows`` of them. Everyone's steps are aggregates of the
    parts (:func:`crm_engine.parts.top_rows`: with Spark only counts and bins reach the
    driver), and the expression is evaluated where each part lies.

    Parameters
    ----------
    scores
        Everyone's ``customer_id``, ``churn_probability`` and ``key``.
    min_probability
        Everyone eligible at or above it is explained.
    top_n
        Also explain the ``top_n`` eligible customers with the highest ``key`` (the value at
        risk, ``probability x clv``, or the probability). A missing ``key`` ranks last.
    key
        The column that ranks customers.
    max_rows
        When more customers qualify, keep the ``max_rows`` of them with the highest ``key``
        (the selected without one rank below every value, above the unselected): TreeSHAP
        costs grow with the rows explained, and at 10M customers the threshold alone would
        select half a million.
    eligible
        Who may be explained (None: everyone; the scoring leaves the lost out).

    Ties at a rank are broken by a hash of ``customer_id``: the same customers are chosen
    however everyone is split in parts.
    """
    eligible = pl.lit(True) if eligible is None else eligible.fill_null(False)
    chosen = eligible & (pl.col("churn_probability") >= min_probability).fill_null(False)
    if top_n > 0:
        chosen = chosen | top_rows(scores, key, top_n, eligible)
    if max_rows is not None:
        chosen = top_rows(scores, key, max_rows, chosen)
    return chosen


def select_for_drivers(
    probability: np.ndarray,
    min_probability: float,
    top_n: int,
    value_at_risk: np.ndarray | None = None,
    max_rows: int | None = None,
) -> np.ndarray:
    """:func:`whom_to_explain` of customers given as arrays (the ``i``-th is customer ``i``):
    top by ``value_at_risk`` (``probability x clv``, NaN where unknown) or, without it, by
    probability. A boolean mask."""
    p = np.asarray(probability, dtype=np.float64)
    key = p if value_at_risk is None else np.asarray(value_at_risk, dtype=np.float64)
    if key.shape != p.shape:
        raise ValueError(f"value_at_risk has {key.size} rows, probability {p.size}")
    frame = pl.DataFrame({"customer_id": np.arange(p.size), "churn_probability": p, "key": key})
    chosen = whom_to_explain(FrameParts(frame), min_probability, top_n, "key", max_rows)
    return frame.select(chosen.alias("chosen")).to_series().to_numpy()


def _keep_strongest_alias(
    c: np.ndarray, names: Sequence[str], group_of: Callable[[str], str | None]
) -> None:
    """Zero, in place, every contribution that is not the largest of its alias group's row."""
    groups: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        g = group_of(name)
        if g is not None:
            groups.setdefault(g, []).append(j)
    for members in groups.values():
        if len(members) < 2:
            continue
        cols = np.asarray(members)
        best = cols[np.argmax(c[:, cols], axis=1)]
        for j in members:
            c[best != j, j] = 0.0


def top_drivers(
    contributions: np.ndarray,
    feature_names: Sequence[str],
    n_drivers: int,
    aliases: Callable[[str], str | None] | None = alias_group,
) -> pl.Series:
    """The ``n_drivers`` largest positive contributions per row, largest first.

    Features of one alias group (:data:`crm_engine.feature_labels.FEATURE_ALIASES`, such as
    ``tenure_days`` and ``T``) say the same thing: of a group only the one with the largest
    contribution in the row can be a driver.

    Parameters
    ----------
    contributions
        ``(m, k + 1)`` from ``booster.predict(..., pred_contrib=True)`` (last column = bias)
        or ``(m, k)``.
    feature_names
        The ``k`` feature names.
    n_drivers
        How many reasons at most; only features pushing risk up (contribution > 0) are kept.
    aliases
        Feature name -> alias group (None: in no group); None turns the rule off.

    Returns
    -------
    polars.Series
        ``List(Struct{feature: String, contribution: Float64})`` of length ``m``.
    """
    names = np.asarray(list(feature_names), dtype=object)
    k = names.size
    c = np.asarray(contributions, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] not in (k, k + 1):
        raise ValueError(f"contributions of shape {c.shape} do not match {k} feature names")
    c = np.array(c[:, :k])
    if aliases is not None:
        _keep_strongest_alias(c, list(names), aliases)
    m = c.shape[0]
    n = min(n_drivers, k)
    if m == 0 or n == 0:
        return pl.Series("churn_drivers", [[]] * m, dtype=DRIVERS_DTYPE)
    if n < k:
        part = np.argpartition(-c, n - 1, axis=1)[:, :n]
    else:
        part = np.tile(np.arange(k), (m, 1))
    vals = np.take_along_axis(c, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    keep = vals > 0
    rows = np.repeat(np.arange(m), n)[keep.ravel()]
    flat = pl.DataFrame(
        {
            "row": rows,
            "feature": pl.Series(names[idx.ravel()[keep.ravel()]], dtype=pl.String),
            "contribution": vals.ravel()[keep.ravel()],
        }
    )
    return _lists_per_row(
        flat.select("row", pl.struct("feature", "contribution").alias("churn_drivers")),
        m,
        DRIVERS_DTYPE,
    )


def _lists_per_row(flat: pl.DataFrame, m: int, dtype: pl.DataType) -> pl.Series:
    """The values of ``flat``'s second column gathered into one list per ``row`` of ``0..m-1``
    (in ``flat``'s order), an empty list for a row without any."""
    name = flat.columns[1]
    grouped = flat.group_by("row", maintain_order=True).agg(name)
    return (
        pl.DataFrame({"row": np.arange(m)})
        .join(grouped, on="row", how="left", maintain_order="left")
        .get_column(name)
        .fill_null(pl.lit([], dtype=dtype))
        .cast(dtype)
    )


# --- drivers in words ------------------------------------------------------------------------


@dataclass(frozen=True)
class Quartiles:
    """Lower quartile, median and upper quartile of a feature over the scored population."""

    q1: float
    median: float
    q3: float

    def level(self, value: float) -> str:
        """``"low"`` below the lower quartile, ``"high"`` above the upper one, else
        ``"typical"`` (a complaint count that most customers have at 0 is high at 1)."""
        if value < self.q1:
            return "low"
        if value > self.q3:
            return "high"
        return "typical"


QUARTILE_CUSTOMERS = 200_000
"""Customers whose values the reasons' quartiles are computed from, at most: a hashed sample of
everyone beyond (:func:`population_quartiles`)."""


def population_quartiles(
    profile: pl.DataFrame | pl.LazyFrame | Parts,
    features: Sequence[str],
    customers: int | None = None,
) -> dict[str, Quartiles]:
    """Quartiles of the numeric ``features`` of ``profile`` (nulls ignored), of a plan or of
    parts only those columns read.

    Computed once per scoring run over the scored population, so every customer's value is
    compared with the same reference: all of its ``customers`` (None: counted) up to
    :data:`QUARTILE_CUSTOMERS`, else a hashed sample of about that many
    (:class:`~features.sample.CustomerSample`: of 200,000 customers a quartile's rank in the
    population is within 0.2 percentile points, two standard errors). Of
    :class:`~crm_engine.parts.Parts` (on the executors with Spark) only the sample's rows come
    back: at 30M customers the columns of everyone would be gigabytes. A population without
    ``customer_id`` is read whole. Text features, and columns absent or all null, get none.
    """
    parts = profile if isinstance(profile, Parts) else FrameParts(profile)
    schema = parts.plan().collect_schema()
    cols = [
        f
        for f in dict.fromkeys(features)
        if f in schema and (schema[f].is_numeric() or schema[f] == pl.Boolean)
    ]
    if not cols:
        return {}
    key = ["customer_id"] if "customer_id" in schema else []  # without it: every row
    read = parts.select(list(dict.fromkeys([*key, *cols])))  # of a plan or files: these alone
    if customers is None:
        customers = count_rows(read, pl.lit(True))[0]
    sample = CustomerSample.bounded(customers, QUARTILE_CUSTOMERS) if key else None
    population = read.aggregate(functools.partial(_sampled, columns=cols, sample=sample))
    qs = (0.25, 0.5, 0.75)
    row = population.select(
        pl.col(f).cast(pl.Float64).quantile(q).alias(f"{i}:{j}")
        for i, f in enumerate(cols)
        for j, q in enumerate(qs)
    ).row(0)
    out = {}
    for i, f in enumerate(cols):
        q1, med, q3 = row[3 * i : 3 * i + 3]
        if q1 is not None and med is not None and q3 is not None:
            out[f] = Quartiles(float(q1), float(med), float(q3))
    return out


def _sampled(
    frame: pl.DataFrame, columns: Sequence[str], sample: CustomerSample | None
) -> pl.DataFrame:
    """``columns`` of a slice's customers in ``sample`` (None: all of them)."""
    kept = frame if sample is None else frame.filter(sample.expr())
    return kept.select(columns)


def reason_text(
    feature: str, value: object, contribution: float, quartiles: Quartiles | None = None
) -> str:
    """One churn driver in words: ``"5G coverage 12% (low), raises risk"``.

    Parameters
    ----------
    feature
        Profile column name.
    value
        The customer's value of it as the model saw it (a category unseen in training reads as
        ``other`` or unknown).
    contribution
        Its signed contribution: > 0 raises risk, < 0 lowers it.
    quartiles
        The population's quartiles of a numeric feature: adds ``(low)``, ``(typical)`` or
        ``(high)``.

    Examples
    --------
    >>> reason_text("plan_type", "prepaid", 0.4)
    'plan: prepaid, raises risk'
    """
    label = plain_label(feature)
    direction = "raises risk" if contribution > 0 else "lowers risk"
    text = format_value(feature, value)
    if text == "unknown":
        return f"{label} unknown, {direction}"
    spec = feature_label(feature)
    if isinstance(value, str | bool) or (spec is not None and spec.is_categorical):
        return f"{label}: {text}, {direction}"
    if quartiles is None:
        return f"{label} {text}, {direction}"
    return f"{label} {text} ({quartiles.level(float(value))}), {direction}"  # type: ignore[arg-type]


def _as_model_saw(values: list[object], categories: Sequence[str]) -> list[object]:
    known = frozenset(categories)
    unseen = OTHER if OTHER in known else None
    return [v if v is None or v in known else unseen for v in values]


def driver_reasons(
    drivers: pl.Series,
    values: pl.DataFrame,
    quartiles: Mapping[str, Quartiles],
    categories: Mapping[str, Sequence[str]] | None = None,
) -> pl.Series:
    """Each row's drivers in words (:func:`reason_text`), in the drivers' order.

    Parameters
    ----------
    drivers
        :func:`top_drivers` of the rows of ``values``.
    values
        The explained customers' profile rows (same order), with every driver feature.
    quartiles
        :func:`population_quartiles` of the scored population.
    categories
        Categorical feature -> training categories (``ChurnModel.feature_spec_.categorical``):
        a value the model did not know reads as the model saw it.

    Returns
    -------
    polars.Series
        ``List(String)`` of length ``len(drivers)``; an empty list where there is no driver.
    """
    m = len(drivers)
    if values.height != m:
        raise ValueError(f"values have {values.height} rows, drivers {m}")
    categories = categories or {}
    flat = (
        pl.DataFrame({"row": np.arange(m), "d": drivers.cast(DRIVERS_DTYPE)})
        .explode("d")
        .filter(pl.col("d").is_not_null())
        .unnest("d")
    )
    texts = np.empty(flat.height, dtype=object)
    features = flat.get_column("feature")
    for feature in features.unique(maintain_order=True).to_list():
        at = np.flatnonzero((features == feature).to_numpy())
        rows = flat.get_column("row").gather(at)
        column = values.get_column(feature)
        if column.dtype.is_numeric():
            column = column.cast(pl.Float64)
        vals = column.gather(rows).to_list()
        if feature in categories:
            vals = _as_model_saw(vals, categories[feature])
        q = quartiles.get(feature)
        contrib = flat.get_column("contribution").gather(at).to_list()
        texts[at] = [reason_text(feature, v, c, q) for v, c in zip(vals, contrib, strict=True)]
    return _lists_per_row(
        flat.select("row", pl.Series("churn_reasons", texts, dtype=pl.String)), m, REASONS_DTYPE
    )


def reasons_in_words(
    drivers: pl.Series,
    explained_rows: pl.DataFrame,
    population: pl.DataFrame | pl.LazyFrame | Parts,
    categories: Mapping[str, Sequence[str]] | None = None,
    customers: int | None = None,
) -> pl.Series:
    """:func:`driver_reasons` with the quartiles of ``population`` (the whole scored profile,
    of ``customers``: :func:`population_quartiles`), computed once and only for the features
    that are someone's driver."""
    used = drivers.explode().struct.field("feature").drop_nulls().unique().sort().to_list()
    quartiles = population_quartiles(population, used, customers)
    return driver_reasons(drivers, explained_rows, quartiles, categories)


def global_importance(contributions: np.ndarray, feature_names: Sequence[str]) -> pl.DataFrame:
    """Mean absolute contribution per feature over the explained customers, largest first.

    Returns
    -------
    polars.DataFrame
        ``feature`` (String), ``mean_abs_contribution`` (Float64).
    """
    names = list(feature_names)
    c = np.asarray(contributions, dtype=np.float64)
    c = c[:, : len(names)]
    values = np.abs(c).mean(axis=0) if c.shape[0] else np.zeros(len(names))
    return pl.DataFrame(
        {"feature": names, "mean_abs_contribution": values},
        schema={"feature": pl.String, "mean_abs_contribution": pl.Float64},
    ).sort("mean_abs_contribution", descending=True, maintain_order=True)
