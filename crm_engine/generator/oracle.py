"""The as-of churn oracle: each customer's true chance of churning within the horizon, from
only what the generator knew at the cut (simulated forward with its own monthly hazard)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from crm_engine.generator.hazard import (
    contagion_share,
    draw_complaints,
    monthly_hazard,
    static_logit,
)
from crm_engine.generator.personas import ChurnEffects
from crm_engine.generator.simulate import BILL_DAYS, Calendar
from crm_engine.io import find_table, scan_raw

__all__ = ["as_of_churn_probability"]

DRAWS = 200
"""Default number of simulated futures."""


def as_of_churn_probability(
    truth_dir: Path,
    as_of: date,
    horizon_days: int,
    draws: int = DRAWS,
    seed: int = 0,
) -> pl.DataFrame:
    """The probability that each customer churns in ``[as_of, as_of + horizon_days)``, given
    only the world's state at ``as_of``.

    Unlike :func:`~crm_engine.generator.true_churn_probability`, which reads the hazards
    realised in the window (driven by the complaints made and the contacts lost after the
    cut), this oracle knows what the generator knew at the cut: every customer's latent
    traits (persona, network experience, price sensitivity, satisfaction, complaint rate),
    contract, the complaints made and left unresolved in the months before the cut's month,
    the complaints of that month opened before ``as_of`` (the interactions table), and who
    left before ``as_of`` (and when). It simulates ``draws`` futures of the cut month's rest
    and the months after with the generator's own monthly hazard
    (:mod:`crm_engine.generator.hazard`): the complaints still to come and the churns of
    every customer (which move their contacts' hazards); in each future a customer's chance
    of leaving in the window is the product of its monthly survivals (a churn falls on a
    uniform day of its month, so the cut month's part is conditional on no churn before
    ``as_of``), and the oracle averages it over the futures.

    It also reads what the bills paid before ``as_of`` (the transactions table) say. A
    postpaid departure is a cut-off (``involuntary_share`` of them) ``unpaid_months`` bills
    after the last one paid, so a customer who missed a bill due before the cut will leave
    by ``unpaid_months`` bill periods after it (with the default 90 days: inside the window,
    ``p_churn`` 1), and one who paid every bill due is less likely to leave in the next
    ``unpaid_months`` periods (a cut-off then would have shown as a missed bill). The
    futures are weighted by that likelihood (Bayes on each customer's churn day; the
    contagion of the simulated futures ignores it). Any model reading the payments sees
    this too: without it the oracle ranked below a model reading the days since the last
    payment. Realised churn dates on or after ``as_of`` are never read.

    Parameters
    ----------
    truth_dir
        The ``_truth`` directory of :func:`crm_engine.generator.generate`; the tables are its
        parent directory.
    as_of
        First day not observed; after the data's first month.
    horizon_days
        Length of the label window (> 0); it must end by the end of the data (the generator
        draws no churn past it).
    draws
        Simulated futures (>= 1); the Monte-Carlo error of ``p_churn`` shrinks as
        ``1 / sqrt(draws)``.
    seed
        Seed of the simulated futures.

    Returns
    -------
    pl.DataFrame
        ``customer_id`` (Int64), ``p_churn`` (Float64 in [0, 1]): one row per customer of the
        population at ``as_of`` (signed up before it, ``churn_date`` null or on or after it:
        the population the churn labels are built on), sorted by ``customer_id``.
    """
    if horizon_days <= 0:
        raise ValueError(f"horizon_days={horizon_days} should be > 0")
    if draws < 1:
        raise ValueError(f"draws={draws} should be >= 1")
    truth_dir = Path(truth_dir)
    params = json.loads((truth_dir / "params.json").read_text())
    cal = Calendar.build(date.fromisoformat(params["start"]), int(params["months"]))
    eff = ChurnEffects(**params["churn_effects"])
    p_unresolved = float(params["world"]["unresolved_complaint"])
    cut = (as_of - cal.start).days
    stop = cut + horizon_days  # first day after the window
    if cut < 0:
        raise ValueError(f"as_of={as_of} should not be before the data's start ({cal.start})")
    if stop > cal.end_day:
        raise ValueError(
            f"the window of {horizon_days} days from {as_of} ends after the data "
            f"({cal.end}): the generator draws no churn past it"
        )
    m0 = int(cal.month_of(np.array([cut]))[0])

    c = pl.read_parquet(truth_dir / "customers.parquet").sort("customer_id")
    n = c.height
    if not (c.get_column("customer_id").to_numpy() == np.arange(1, n + 1)).all():
        raise ValueError(f"{truth_dir / 'customers.parquet'} should hold customer ids 1..{n}")
    signup = _days(c.get_column("signup_date"), cal.start)
    churn = c.get_column("churn_date")
    churn_day = _days(churn.fill_null(cal.start), cal.start)
    left = churn.is_not_null().to_numpy() & (churn_day < cut)  # known at the cut
    known_churn_month = np.where(left, cal.month_of(churn_day), -1)
    population = (signup < cut) & ~left
    postpaid = c.get_column("contract_end_date").is_not_null().to_numpy()
    end_month = np.where(
        postpaid, _months(c.get_column("contract_end_date").fill_null(cal.start), cal.start), 0
    )
    persona_logit = c.get_column("persona").replace_strict(
        {k: v["churn"]["base_logit"] for k, v in params["personas"].items()},
        return_dtype=pl.Float64,
    )
    base = static_logit(
        eff,
        persona_logit.to_numpy(),
        c.get_column("network_badness").to_numpy(),
        c.get_column("price_sensitivity").to_numpy(),
        ~postpaid,
        c.get_column("satisfaction").to_numpy(),
    )
    rate = c.get_column("complaint_rate").to_numpy()
    graph = pl.read_parquet(truth_dir / "call_graph.parquet")
    edges_u = graph.get_column("customer_id").to_numpy() - 1
    edges_v = graph.get_column("contact_id").to_numpy() - 1

    # complaints of the 3 months before m0 and of m0 before the cut; unresolved before m0
    back = 3
    history = np.zeros((n, back + 1), dtype=np.int64)  # months m0-3 .. m0
    counts = (
        pl.scan_parquet(truth_dir / "complaints.parquet")
        .filter(pl.col("month") < _month_start(cal, m0))
        .collect()
    )
    idx = counts.get_column("customer_id").to_numpy() - 1
    month = _months(counts.get_column("month"), cal.start)
    unresolved = np.bincount(idx, counts.get_column("unresolved").to_numpy(), minlength=n)
    unresolved = unresolved.astype(np.int64)
    recent = month >= m0 - back
    np.add.at(
        history,
        (idx[recent], month[recent] - (m0 - back)),
        counts.get_column("complaints").to_numpy()[recent],
    )
    history[:, back] = _complaints_before(truth_dir.parent, cal, m0, as_of, n)

    # what the bills paid before the cut say of each postpaid customer's churn day
    ev = _bill_evidence(truth_dir.parent, c, cal, as_of, params["world"], postpaid, population)
    targets = np.stack(
        [np.full(n, stop), ev.lo, ev.hi, np.minimum(ev.lo, stop), np.minimum(ev.hi, stop)]
    )
    m_hi = int(cal.month_of(np.array([max(stop, int(ev.hi.max())) - 1]))[0])

    rng = np.random.default_rng(seed)
    num, den = np.zeros(n), np.zeros(n)
    for _ in range(draws):
        churn_month = known_churn_month.copy()
        complaints = history.copy()  # columns: months m - 3 .. m (m the month simulated)
        open_unres = unresolved.copy()
        log_surv = np.zeros_like(targets, dtype=np.float64)  # no churn before each target
        for m in range(m0, m_hi + 1):
            t, t1 = int(cal.edges[m]), int(cal.edges[m + 1])
            length = t1 - t
            if m > m0:  # the previous month is complete: roll the window of 3 months
                complaints = np.concatenate([complaints[:, 1:], np.zeros((n, 1), np.int64)], 1)
            at_risk = signup < t
            h = monthly_hazard(
                eff,
                base,
                recent_complaints=complaints[:, :back].sum(axis=1),
                open_unresolved=open_unres,
                tenure_days=t - signup,
                contagion=contagion_share(
                    edges_u, edges_v, churn_month, at_risk, m, eff.contagion_months
                ),
                postpaid=postpaid,
                month=m,
                contract_end_month=end_month,
            )
            h = np.where(at_risk, h, 0.0)
            # chance of a churn in the days of the month still ahead (from the cut in m0),
            # and in those before each target, given none before them
            lo = max(t, cut)
            ahead = h * (t1 - lo) / (length - h * (lo - t))
            days = np.clip(targets - lo, 0, t1 - lo)
            log_surv += np.log1p(-h * days / (length - h * (lo - t)))
            alive = churn_month < 0
            new = alive & (rng.random(n) < ahead)
            churn_month[new] = m
            if m < m_hi:
                exposure = np.clip((t1 - np.maximum(signup, lo)) / length, 0.0, 1.0)
                more, unres = draw_complaints(rng, rate, exposure, p_unresolved)
                # the complaints of m0 made before the cut are unresolved as often as the rest
                if m == m0:
                    unres = unres + rng.binomial(complaints[:, back], p_unresolved)
                complaints[:, back] += more
                open_unres += unres
        s_stop, s_lo, s_hi, s_lo_in, s_hi_in = np.exp(log_surv)
        # the bills' likelihood of the churn day is w0 + w1 [lo <= day < hi]
        num += ev.w0 * (1.0 - s_stop) + ev.w1 * (s_lo_in - s_hi_in)
        den += ev.w0 + ev.w1 * (s_lo - s_hi)
    # a bill missed before the cut that no simulated future explains: a cut-off to come
    p = np.clip(np.divide(num, den, out=np.ones(n), where=den > 0), 0.0, 1.0)
    keep = np.flatnonzero(population)
    return pl.DataFrame(
        {
            "customer_id": c.get_column("customer_id").gather(keep).cast(pl.Int64),
            "p_churn": p[keep],
        }
    )


def _month_start(cal: Calendar, month: int) -> date:
    """First day of calendar month ``month`` of the data."""
    return cal.dates(cal.edges[[month]])[0].item()


def _days(days: pl.Series, start: date) -> np.ndarray:
    """Dates as whole days from ``start``."""
    return (days - start).dt.total_days().to_numpy().astype(np.int64)


def _months(days: pl.Series, start: date) -> np.ndarray:
    """Calendar month of each date, counted from the month of ``start``."""
    return ((days.dt.year() - start.year) * 12 + days.dt.month() - start.month).to_numpy()


def _complaints_before(data_dir: Path, cal: Calendar, m0: int, as_of: date, n: int) -> np.ndarray:
    """Complaints each customer opened in month ``m0`` before ``as_of`` (the interactions
    table: what the operator saw, nothing opened on or after ``as_of``)."""
    source = find_table(data_dir, "interactions")
    if source is None:
        raise ValueError(f"no interactions table in {data_dir}")
    month_start = datetime.combine(_month_start(cal, m0), time())
    cut = datetime.combine(as_of, time())
    seen = (
        scan_raw(source)
        .filter(
            (pl.col("kind") == "complaint")
            & (pl.col("opened_at") >= month_start)
            & (pl.col("opened_at") < cut)
        )
        .group_by("customer_id")
        .agg(pl.len().cast(pl.Int64).alias("n"))
        .collect()
    )
    out = np.zeros(n, dtype=np.int64)
    out[seen.get_column("customer_id").to_numpy() - 1] = seen.get_column("n").to_numpy()
    return out


@dataclass(frozen=True)
class _Evidence:
    """What the bills before the cut say of each customer's churn day ``d``: its likelihood
    is ``w0 + w1 [lo <= d < hi]`` (days from the start)."""

    w0: np.ndarray
    w1: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def _bill_evidence(
    data_dir: Path,
    truth: pl.DataFrame,
    cal: Calendar,
    as_of: date,
    world: dict[str, Any],
    postpaid: np.ndarray,
    population: np.ndarray,
) -> _Evidence:
    """The bills each postpaid customer of the population paid before ``as_of`` (the
    transactions table) against those due by then (every ``BILL_DAYS`` from the first).

    A departure is a cut-off (``involuntary_share`` of them) ``unpaid_months`` bills after the
    last one paid: one with every bill due paid (the last at ``b``) is not a cut-off falling
    on a day ``<= b + unpaid_months x BILL_DAYS`` (likelihood ``1 - share`` there, 1
    elsewhere); one who missed the bill due at ``b`` is a cut-off to come, after the day
    ``b + (unpaid_months - 1) x BILL_DAYS`` (the last paid) and by ``b + unpaid_months x
    BILL_DAYS``.
    """
    n = truth.height
    cut = (as_of - cal.start).days
    end = int(cal.end_day)
    share, unpaid = float(world["involuntary_share"]), int(world["unpaid_months"])
    start = datetime.combine(cal.start, time())
    t0 = (truth.get_column("first_purchase_at") - start).dt.total_seconds().to_numpy() / 86_400
    t0 = np.where(postpaid, np.nan_to_num(t0, nan=np.inf), np.inf)
    due = np.where(t0 < cut, np.ceil((cut - t0) / BILL_DAYS), 0).astype(np.int64)
    paid = np.zeros(n, dtype=np.int64)
    source = find_table(data_dir, "transactions")
    if source is None:
        raise ValueError(f"no transactions table in {data_dir}")
    bills = (
        scan_raw(source)
        .filter(
            (pl.col("category") == "bill")
            & (pl.col("amount") > 0)
            & (pl.col("ts") < datetime.combine(as_of, time()))
        )
        .group_by("customer_id")
        .agg(pl.len().cast(pl.Int64).alias("n"))
        .collect()
    )
    paid[bills.get_column("customer_id").to_numpy() - 1] = bills.get_column("n").to_numpy()
    seen = population & postpaid & (due > 0)
    missed = seen & (paid < due)
    w0 = np.where(missed, 0.0, 1.0)
    w1 = np.where(missed, 1.0, np.where(seen, -share, 0.0))
    # the bill that went unpaid (missed) or the last one paid, and the days it bounds
    b = np.where(seen, t0 + (np.where(missed, paid + 1, due) - 1) * BILL_DAYS, cut)
    hi = np.floor(b + unpaid * BILL_DAYS).astype(np.int64) + 1
    after = np.floor(b + (unpaid - 1) * BILL_DAYS).astype(np.int64) + 1
    lo = np.where(missed & (paid > 0), np.maximum(after, cut), cut)
    hi = np.clip(np.where(seen, hi, cut), lo, end)
    return _Evidence(w0=w0, w1=w1, lo=lo, hi=hi)
