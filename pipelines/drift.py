"""Drift since the previous committed run: PSI of features and scores, categories, rows, moves."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from crm_engine.config import FeaturesConfig, MonitoringConfig
from crm_engine.scores import run_scores
from crm_engine.stage_reports import DriftAlert, DriftReport
from pipelines.manifest import changed_output
from pipelines.profiles import ColumnReader, Profile, column_reader
from pipelines.runner import StageContext, StageOutput

if TYPE_CHECKING:
    from pipelines.backtest import CommittedRun

__all__ = [
    "EPSILON",
    "MOVED_COLUMNS",
    "alerts",
    "backtest_drift",
    "bin_counts",
    "chance_psi",
    "compare",
    "decile_edges",
    "drift_since",
    "drift_stage",
    "fingerprint",
    "moved_share",
    "psi",
    "region_counts",
    "row_counts",
]

EPSILON = 1e-4
"""The share an empty bin counts as in :func:`psi` (so a bin empty on one side is finite)."""
MOVED_COLUMNS = ("churn_risk_band", "value_tier")
"""Score columns whose movers (customers in both runs whose value changed) are counted."""
REGION_COLUMN = "region"
MAX_REGIONS = 30
"""More distinct regions than this: no PSI per region (it would be noise, and unbounded)."""
MIN_CATEGORY_CUSTOMERS = 10
"""A new or vanished category value holding fewer customers is listed, not alerted on."""
NULL = "(null)"
"""The key of missing values among a categorical column's counts."""
SIG_FIGS = 3
"""Numeric values are binned at this many significant figures: a mass point that moves by less
(``p_alive`` of postpaid customers, 0.98869 one month and 0.98889 the next) stays in its bin."""
CUMULATIVE_COLUMNS = ("frequency", "recency", "T")
"""The BTYD summary columns: they grow with every month a customer stays, so a history that
starts for most customers on the same day (an export's first month) shifts them all each month.
Their PSI is measured and recorded, never alerted on."""


def _numeric(values: pl.Series) -> pl.Series:
    """Float64 values at :data:`SIG_FIGS` significant figures, NaN as null."""
    return values.cast(pl.Float64).fill_nan(None).round_sig_figs(SIG_FIGS)


# --- pure functions over frames and counts ---------------------------------------------------


def decile_edges(values: pl.Series) -> list[float]:
    """The de-duplicated deciles (10 %, ..., 90 %) of the non-null values at
    :data:`SIG_FIGS` significant figures: bin edges of right-closed bins ``(-inf, e1],
    (e1, e2], ..., (ek, inf)``; empty when all are null."""
    return _edges(_numeric(values))


def _edges(clean: pl.Series) -> list[float]:
    """:func:`decile_edges` of values already made :func:`_numeric`."""
    present = clean.drop_nulls().sort()  # sorted once: each quantile then reads it in place
    if present.is_empty():
        return []
    quantiles = [present.quantile(q / 10, interpolation="nearest") for q in range(1, 10)]
    return sorted({float(q) for q in quantiles if q is not None})


def _bin_codes(clean: pl.Series, edges: Sequence[float]) -> np.ndarray:
    """Each row's bin on ``edges`` (as :func:`bin_counts` counts them), ``len(edges) + 1`` for
    a null: one array a column's counts and its counts per region both come from."""
    data = clean.to_numpy()
    codes = np.searchsorted(np.asarray(edges, dtype=float), data, side="left").astype(np.int32)
    codes[np.isnan(data)] = len(edges) + 1
    return codes


def bin_counts(values: pl.Series, edges: Sequence[float]) -> tuple[list[int], int]:
    """Counts of ``values`` (at :data:`SIG_FIGS` significant figures) in the right-closed bins
    of ``edges`` (``len(edges) + 1`` bins) and the number of nulls (NaN counts as null)."""
    clean = _numeric(values)
    nulls = clean.null_count()
    data = clean.drop_nulls().to_numpy()
    index = np.searchsorted(np.asarray(edges, dtype=float), data, side="left")
    counts = np.bincount(index, minlength=len(edges) + 1)
    return [int(c) for c in counts], int(nulls)


def psi(expected: Sequence[float], actual: Sequence[float], epsilon: float = EPSILON) -> float:
    """The population stability index of ``actual`` counts against ``expected`` counts over the
    same bins: ``sum((a_i - e_i) * ln(a_i / e_i))`` of the shares, a share of 0 counted as
    ``epsilon``. NaN when either side is empty.

    Raises
    ------
    ValueError
        When the two have different numbers of bins.
    """
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    if e.shape != a.shape:
        raise ValueError(f"expected has {e.size} bins, actual {a.size}: not the same bins")
    if e.sum() <= 0 or a.sum() <= 0:
        return math.nan
    pe = np.maximum(e / e.sum(), epsilon)
    pa = np.maximum(a / a.sum(), epsilon)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


def _with_nulls(counts: Sequence[int], nulls: int, other_nulls: int) -> list[int]:
    """Bin counts with the null bin appended when either side has nulls."""
    return [*counts, nulls] if nulls or other_nulls else list(counts)


def _category_counts(values: pl.Series) -> dict[str, int]:
    counts = values.cast(pl.String).fill_null(NULL).value_counts()
    return {str(v): int(n) for v, n in counts.iter_rows()}


def _columns(profile: ColumnReader, scores: ColumnReader) -> dict[str, tuple[str, str]]:
    """Column -> (source, kind): the profile's model features (by the profile's declared roles),
    then the ``crm.scores/v1`` columns the profile does not hold, numeric or text by their
    declared type (segment ids and names left out: segmentation reports its own migration;
    columns of a stage that did not run left out)."""
    from crm_engine.contracts import SCORE_COLUMNS
    from features import model_features

    numeric, categorical = model_features(profile.schema)
    out = {c: ("profile", "numeric") for c in numeric}
    out |= {c: ("profile", "categorical") for c in categorical}
    for column in SCORE_COLUMNS:
        name = column.name
        if name in out or name in ("customer_id", "as_of", "segment_id", "segment_name"):
            continue
        if name not in scores.columns or scores[name].null_count() == scores.height:
            continue
        if column.dtype.is_numeric():
            out[name] = ("scores", "numeric")
        elif column.dtype == pl.String:
            out[name] = ("scores", "categorical")
    return out


def region_counts(
    profile: Profile, edges: Mapping[str, Sequence[float]], max_regions: int = MAX_REGIONS
) -> dict[str, dict[str, dict[str, Any]]]:
    """Region -> column -> ``counts`` and ``nulls`` of the profile's rows in that region on the
    given ``edges`` (empty without a region column or with more than ``max_regions`` regions)."""
    profile = column_reader(profile)
    regions = _region_codes(profile, max_regions)
    if regions is None:
        return {}
    out: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in regions[0]}
    for name, bins in edges.items():
        _add_region_counts(out, regions, name, _bin_codes(_numeric(profile[name]), bins), bins)
    return out


def _region_codes(profile: ColumnReader, max_regions: int) -> tuple[list[str], np.ndarray] | None:
    """The regions present (sorted) and each row's index among them, -1 without a region; None
    without a region column or with more than ``max_regions`` regions."""
    if REGION_COLUMN not in profile.columns:
        return None
    region = profile[REGION_COLUMN].cast(pl.String)
    names = region.drop_nulls().unique().sort().to_list()
    if len(names) > max_regions:
        return None
    index = region.replace_strict(names, list(range(len(names))), default=-1, return_dtype=pl.Int32)
    return [str(n) for n in names], index.to_numpy()


def _add_region_counts(
    out: dict[str, dict[str, dict[str, Any]]],
    regions: tuple[list[str], np.ndarray],
    column: str,
    codes: np.ndarray,
    bins: Sequence[float],
) -> None:
    """Add ``column``'s ``counts`` and ``nulls`` per region to ``out`` (region -> column ->
    counts) from each row's region index and bin code: one ``bincount`` instead of a copy of
    the profile per region."""
    names, index = regions
    known = index >= 0
    width = len(bins) + 2  # the bins, then the null code of _bin_codes at len(bins) + 1
    flat = index[known] * width + codes[known]
    table = np.bincount(flat, minlength=len(names) * width).reshape(len(names), width)
    for i, name in enumerate(names):
        counts = [int(c) for c in table[i, : len(bins) + 1]]
        out[name][column] = {"counts": counts, "nulls": int(table[i, len(bins) + 1])}


def fingerprint(
    profile: Profile,
    scores: Profile,
    rows: Mapping[str, int | None],
    max_regions: int = MAX_REGIONS,
) -> dict[str, Any]:
    """A run's distributions, aggregates only: what the next run's drift is computed against.

    Parameters
    ----------
    profile
        The profile at as_of (its numeric and categorical model features).
    scores
        The run's scores (the columns the profile does not hold; all-null columns left out).
    rows
        Rows per input table.
    max_regions
        With more regions than this, no counts per region.

    Returns
    -------
    dict
        ``numeric``: column -> ``source``, ``edges``, ``counts``, ``nulls``; ``categorical``:
        column -> ``source``, ``counts`` (value -> customers); ``by_region``: region -> numeric
        profile column -> ``counts``, ``nulls`` (on the same edges); ``rows``; ``customers``.
    """
    profile, scores = column_reader(profile), column_reader(scores)
    numeric: dict[str, Any] = {}
    categorical: dict[str, Any] = {}
    regions = _region_codes(profile, max_regions)
    by_region: dict[str, dict[str, dict[str, Any]]] = (
        {} if regions is None else {name: {} for name in regions[0]}
    )
    for name, (source, kind) in _columns(profile, scores).items():
        values = (profile if source == "profile" else scores)[name]
        if kind == "numeric":
            clean = _numeric(values)  # once: it was the fingerprint's most expensive step
            edges = _edges(clean)
            column = _bin_codes(clean, edges)
            counted = np.bincount(column, minlength=len(edges) + 2)
            numeric[name] = {
                "source": source,
                "edges": edges,
                "counts": [int(c) for c in counted[: len(edges) + 1]],
                "nulls": int(counted[len(edges) + 1]),
            }
            if source == "profile" and regions is not None:  # counted now, not kept
                _add_region_counts(by_region, regions, name, column, edges)
        else:
            categorical[name] = {"source": source, "counts": _category_counts(values)}
    return {
        "numeric": numeric,
        "categorical": categorical,
        "by_region": by_region,
        "rows": dict(rows),
        "customers": profile.height,
    }


def chance_psi(bins: int, n_expected: int, n_actual: int) -> float:
    """A PSI two samples of these sizes from one distribution seldom reach by chance: the null
    mean ``(bins - 1) x c`` plus three standard deviations ``3 x sqrt(2 (bins - 1)) x c``, with
    ``c = 1 / n_expected + 1 / n_actual`` (PSI is about a chi-square over the sample sizes).

    Measured on two independent samples of one distribution on 10 decile bins of the first:
    exceeded 2.0% of the time with 120 customers each (1.2% with 400); ``psi_alert`` (0.25) plus
    it 0.35% of the time with 120 (never in 4,000 draws with 400).
    """
    c = 1.0 / max(n_expected, 1) + 1.0 / max(n_actual, 1)
    return ((bins - 1) + 3.0 * math.sqrt(2.0 * (bins - 1))) * c


def _region_psi(
    previous: Mapping[str, Any], current: Mapping[str, Any], min_customers: int
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Numeric profile feature -> region -> PSI within that region, from the two runs' counts
    per region on the same (the previous run's) edges, for regions with at least
    ``min_customers`` in both runs; and the :func:`chance_psi` of each."""
    out: dict[str, dict[str, float]] = {}
    chance: dict[str, dict[str, float]] = {}
    for region, cur_cols in current.items():
        prev_cols = previous.get(region)
        if prev_cols is None:
            continue
        for name, cur in cur_cols.items():
            prev = prev_cols.get(name)
            if prev is None or len(prev["counts"]) != len(cur["counts"]):
                continue
            sizes = (sum(prev["counts"]) + prev["nulls"], sum(cur["counts"]) + cur["nulls"])
            if min(sizes) < min_customers:
                continue
            e = _with_nulls(prev["counts"], prev["nulls"], cur["nulls"])
            a = _with_nulls(cur["counts"], cur["nulls"], prev["nulls"])
            value = psi(e, a)
            if math.isfinite(value):
                out.setdefault(name, {})[region] = round(value, 6)
                chance.setdefault(name, {})[region] = chance_psi(len(e), *sizes)
    return out, chance


def compare(
    previous: Mapping[str, Any],
    profile: Profile,
    scores: Profile,
    rows: Mapping[str, int | None],
    cfg: MonitoringConfig,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """This run's fingerprint and its drift against the ``previous`` run's fingerprint.

    Each numeric column is counted on the previous run's edges; each categorical column is
    compared value by value (new and vanished values listed); per region the numeric profile
    features too.

    Returns
    -------
    tuple
        ``(fingerprint, drift)`` with ``drift`` holding ``psi``, ``psi_by_region``,
        ``categories``, ``rows`` and ``alerts`` (a list of :class:`DriftAlert`).
    """
    profile, scores = column_reader(profile), column_reader(scores)
    columns = _columns(profile, scores)
    current = fingerprint(profile, scores, rows)
    values: dict[str, float] = {}
    # numeric: this run's values on the previous run's bins
    for name, prev in previous.get("numeric", {}).items():
        if columns.get(name, ("", ""))[1] != "numeric":
            continue
        source = profile if columns[name][0] == "profile" else scores
        counts, nulls = bin_counts(source[name], prev["edges"])
        value = psi(
            _with_nulls(prev["counts"], prev["nulls"], nulls),
            _with_nulls(counts, nulls, prev["nulls"]),
        )
        if math.isfinite(value):
            values[name] = round(value, 6)
    categories: dict[str, dict[str, dict[str, int]]] = {}
    for name, prev in previous.get("categorical", {}).items():
        cur = current["categorical"].get(name)
        if cur is None:
            continue
        before, now = prev["counts"], cur["counts"]
        keys = sorted(set(before) | set(now))
        value = psi([before.get(k, 0) for k in keys], [now.get(k, 0) for k in keys])
        if math.isfinite(value):
            values[name] = round(value, 6)
        new = {k: now[k] for k in keys if k not in before}
        vanished = {k: before[k] for k in keys if k not in now}
        if new or vanished:
            categories[name] = {"new": new, "vanished": vanished}
    on_previous_edges = {
        name: prev["edges"]
        for name, prev in previous.get("numeric", {}).items()
        if prev.get("source") == "profile" and columns.get(name) == ("profile", "numeric")
    }
    by_region, chance = _region_psi(
        previous.get("by_region", {}),
        region_counts(profile, on_previous_edges),
        cfg.min_region_customers,
    )
    row_changes = {
        t: {"previous": previous.get("rows", {}).get(t), "current": rows.get(t)}
        for t in sorted(set(previous.get("rows", {})) | set(rows))
    }
    drift = {
        "psi": dict(sorted(values.items(), key=lambda kv: -kv[1])),
        "psi_by_region": by_region,
        "categories": categories,
        "rows": row_changes,
        "alerts": alerts(values, by_region, categories, row_changes, cfg, chance),
    }
    return current, drift


def _regions_alone(
    per_region: Mapping[str, float], threshold: float, chance: Mapping[str, float]
) -> list[str]:
    """The regions whose PSI reaches ``threshold`` plus what their size gives by chance, when
    the others' does not (else none)."""
    passing = sorted(r for r, v in per_region.items() if v >= threshold + chance.get(r, 0.0))
    return passing if 0 < len(passing) < len(per_region) else []


def alerts(
    values: Mapping[str, float],
    by_region: Mapping[str, Mapping[str, float]],
    categories: Mapping[str, Mapping[str, Mapping[str, int]]],
    rows: Mapping[str, Mapping[str, int | None]],
    cfg: MonitoringConfig,
    chance: Mapping[str, Mapping[str, float]] | None = None,
) -> list[DriftAlert]:
    """The findings worth a line: PSI at ``psi_warn`` (warning) or ``psi_alert`` (alert); an
    alert too for a feature whose PSI within one or a few regions reaches ``psi_alert`` (plus
    the :func:`chance_psi` of the region's size, in ``chance``) when the other regions' does
    not, naming them; new or vanished values of at least :data:`MIN_CATEGORY_CUSTOMERS`
    customers; an input table that vanished. :data:`CUMULATIVE_COLUMNS` are never alerted on.
    """
    found: list[DriftAlert] = []
    names = set(values) | set(by_region)
    for name in sorted(names - set(CUMULATIVE_COLUMNS), key=lambda c: -values.get(c, 0.0)):
        value = values.get(name)
        per_region = by_region.get(name, {})
        regions = _regions_alone(per_region, cfg.psi_alert, (chance or {}).get(name, {}))
        if regions or (value is not None and value >= cfg.psi_alert):
            level = "alert"
        elif value is not None and value >= cfg.psi_warn:
            level = "warn"
        else:
            continue
        text = f"{name} PSI {value:.3f}" if value is not None else name
        if value is not None and value >= cfg.psi_warn:
            text += f" (>= {cfg.psi_alert if value >= cfg.psi_alert else cfg.psi_warn})"
        if regions:
            inside = ", ".join(f"{r} {per_region[r]:.2f}" for r in regions)
            others = max(v for r, v in per_region.items() if r not in regions)
            text += (
                f"; region {', '.join(regions)} alone (PSI {inside}; the other regions at most "
                f"{others:.2f})"
            )
        found.append(DriftAlert(level, "psi", name, text, value, regions))
    for name, change in categories.items():
        new = {k: n for k, n in change["new"].items() if n >= MIN_CATEGORY_CUSTOMERS}
        gone = {k: n for k, n in change["vanished"].items() if n >= MIN_CATEGORY_CUSTOMERS}
        if not (new or gone):
            continue
        parts = []
        if new:
            parts.append("new values " + ", ".join(f"{k!r} ({n:,})" for k, n in new.items()))
        if gone:
            parts.append(
                "vanished values " + ", ".join(f"{k!r} (had {n:,})" for k, n in gone.items())
            )
        found.append(DriftAlert("alert", "categories", name, f"{name}: {'; '.join(parts)}"))
    for table, r in rows.items():
        if r.get("previous") and r.get("current") is None:
            message = f"input table {table} vanished (had {r['previous']:,} rows)"
            found.append(DriftAlert("alert", "rows", table, message))
    return found


def moved_share(
    previous: pl.DataFrame, current: Profile, columns: Sequence[str] = MOVED_COLUMNS
) -> dict[str, dict[str, float]]:
    """For each column both hold with values: the customers in both runs (joined on
    ``customer_id``, both values present), how many changed value, and the share. ``current``
    is read a column at a time (:class:`ColumnReader`)."""
    current = column_reader(current)
    out: dict[str, dict[str, float]] = {}
    for name in columns:
        if name not in previous.columns or name not in current.columns:
            continue
        now = pl.DataFrame({"customer_id": current["customer_id"], "after": current[name]})
        before = previous.select("customer_id", pl.col(name).alias("before"))
        both = before.join(now, on="customer_id").drop_nulls()
        if both.is_empty():
            continue
        moved = int((both["before"] != both["after"]).sum())
        out[name] = {"customers": both.height, "moved": moved, "share": moved / both.height}
    return out


# --- the stage ---------------------------------------------------------------------------------


def _previous_scores(run_dir: Path, manifest: Mapping[str, Any]) -> pl.DataFrame | None:
    """The previous run's ``customer_id`` and moved columns, when its scores (a file or a
    directory of parts) are still as its run recorded them."""
    source = run_scores(run_dir)
    if source is None or changed_output(run_dir, source.path.name, manifest) is not None:
        return None
    scan = pl.scan_parquet(source.files())
    present = scan.collect_schema()
    return scan.select("customer_id", *[c for c in MOVED_COLUMNS if c in present]).collect()


def row_counts(tables: Mapping[str, pl.LazyFrame]) -> dict[str, int]:
    """Rows per input table (one ``len`` per table)."""
    return {name: int(lf.select(pl.len()).collect().item()) for name, lf in sorted(tables.items())}


def drift_since(
    previous: CommittedRun,
    profile: Profile,
    scores: Profile,
    rows: Mapping[str, int],
    cfg: MonitoringConfig,
) -> DriftReport:
    """The drift of ``profile``, ``scores`` and the input ``rows`` since the committed run
    ``previous``, against the fingerprint its manifest recorded (only this fingerprint, with a
    note, when it recorded none).

    ``scores`` may hold only ``customer_id`` (the backtest command, which scores nobody): the
    score columns and the movers are then not compared, the profile features and rows are.
    """
    scores = column_reader(scores)
    recorded = previous.manifest.get("drift") or {}
    base = recorded.get("fingerprint") if isinstance(recorded, dict) else None
    if not isinstance(base, dict):
        return DriftReport(
            fingerprint=fingerprint(profile, scores, rows),
            psi_warn=cfg.psi_warn,
            psi_alert=cfg.psi_alert,
            previous_run_id=previous.run_id,
            previous_as_of=previous.as_of,
            notes=[f"run {previous.run_id} recorded no distributions: nothing to compare"],
        )
    current, drift = compare(base, profile, scores, rows, cfg)
    notes = []
    moved: dict[str, dict[str, float]] = {}
    if any(c in scores.columns for c in MOVED_COLUMNS):
        before = _previous_scores(previous.path, previous.manifest)
        if before is None:
            notes.append(
                f"run {previous.run_id}'s scores are missing or changed: moves not counted"
            )
        else:
            moved = moved_share(before, scores)
    return DriftReport(
        fingerprint=current,
        psi_warn=cfg.psi_warn,
        psi_alert=cfg.psi_alert,
        previous_run_id=previous.run_id,
        previous_as_of=previous.as_of,
        psi=drift["psi"],
        psi_by_region=drift["psi_by_region"],
        categories=drift["categories"],
        rows=drift["rows"],
        moved=moved,
        alerts=drift["alerts"],
        notes=notes,
        not_alerted=[c for c in CUMULATIVE_COLUMNS if c in drift["psi"]],
    )


def backtest_drift(
    run: CommittedRun,
    tables: dict[str, pl.LazyFrame],
    as_of: dt.date,
    features_cfg: FeaturesConfig,
    cfg: MonitoringConfig,
) -> DriftReport:
    """The input side of the drift since the committed ``run`` in data known up to ``as_of``
    (``crm-engine backtest``): rows per table, and the profile at ``as_of`` (the run's own
    builder, on everyone: as costly as a run's profile) against the run's recorded profile
    features; no scores, so no score column and no movers.

    ``features_cfg`` should be the run's (its manifest's ``config.features``), so the profile
    has the columns and windows the run's fingerprint was counted on.
    """
    from pipelines.profiles import local_profile

    profile = local_profile(tables, as_of, features_cfg)
    scores = profile.select("customer_id")
    report = drift_since(run, profile, scores, row_counts(tables), cfg)
    note = f"input side only: the profile at {as_of} against run {run.run_id}'s, no scores compared"
    return dataclasses.replace(report, notes=[note, *report.notes])


def drift_stage(
    ctx: StageContext,
    tables: dict[str, pl.LazyFrame],
    profile: pl.DataFrame | pl.LazyFrame,
    scores: pl.DataFrame | pl.LazyFrame,
) -> StageOutput:
    """This run's fingerprint and its drift since the last committed run before as_of (the
    fingerprint only without one); metrics ``drift.psi.<column>``, ... The profile and the
    scores (a plan over where they lie) are read a column at a time (:class:`ColumnReader`)."""
    from pipelines.backtest import BacktestWarning, committed_runs

    profile, scores = ColumnReader(profile), ColumnReader(scores)
    cfg = ctx.cfg.monitoring
    rows = row_counts(tables)
    previous = None
    if ctx.output_dir is not None:
        with warnings.catch_warnings():  # an unreadable manifest: the backtest has said so
            warnings.simplefilter("ignore", BacktestWarning)
            runs = committed_runs(ctx.output_dir)
            previous = next((r for r in runs if r.as_of < ctx.as_of), None)
    if previous is None:
        report = DriftReport(
            fingerprint=fingerprint(profile, scores, rows),
            psi_warn=cfg.psi_warn,
            psi_alert=cfg.psi_alert,
        )
        return StageOutput(outputs={}, report=report)
    report = drift_since(previous, profile, scores, rows, cfg)
    if not report.compared:
        return StageOutput(outputs={}, report=report)
    params = {"drift.previous_run_id": previous.run_id}
    return StageOutput(outputs={}, metrics=report.metrics(), params=params, report=report)
