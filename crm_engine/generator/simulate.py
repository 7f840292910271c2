"""Simulation of the synthetic operator: global per-customer state, then per-chunk table rows.

Units of the generated tables: transaction ``amount`` in currency units (negative = refund),
usage in MB / minutes / messages per month, network ``dropped_call_rate``,
``call_setup_success_rate`` and ``coverage_5g_share`` as fractions in [0, 1],
``packet_loss_pct`` in percent, ``avg_download_mbps`` in Mbit/s, ``latency_ms`` in ms.

Time is counted in days from ``start`` (a float for event times, an int for dates). A
customer is observed from ``signup_date`` until the day before ``churn_date``: no row of
any table is dated on or after ``churn_date``, except monthly rows, which are dated on the
first day of a month in which the customer was active for at least one day.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from crm_engine.contracts import INPUT_TABLES
from crm_engine.generator.hazard import (
    contagion_share,
    draw_complaints,
    monthly_hazard,
    static_logit,
)
from crm_engine.generator.personas import (
    GENDERS,
    NETWORK_CUSTOMER_SD,
    OCCUPATIONS,
    PERSONAS,
    REGION_NETWORK_RURAL,
    REGION_NETWORK_URBAN,
    REGION_WEIGHTS_RURAL,
    REGION_WEIGHTS_URBAN,
    REGIONS,
    WorldParams,
)

FUTURE_MONTHS = 12
"""Months past the end of the data for which the churn hazard is recorded."""
BILL_DAYS = 365.25 / 12
"""Days between two bills of a postpaid customer (the first comes one period after signup)."""

# Independent random streams: (seed, stream, chunk) -> numpy Generator.
_S_POPULATION, _S_GRAPH, _S_PURCHASE, _S_MONTHLY, _S_CONTRACT = 1, 2, 3, 4, 5
_S_TX, _S_USAGE, _S_NETWORK, _S_INTERACTIONS, _S_SURVEYS, _S_CALLS = 10, 11, 12, 13, 14, 15

_US_PER_DAY = 86_400 * 1_000_000

# Channel mix by age group (<30, 30-54, 55+, unknown).
_TX_CHANNELS = ("app", "online", "store", "phone")
_TX_CHANNEL_P = np.array(
    [
        [0.60, 0.28, 0.09, 0.03],
        [0.38, 0.30, 0.20, 0.12],
        [0.10, 0.12, 0.45, 0.33],
        [0.35, 0.28, 0.22, 0.15],
    ]
)
_INT_CHANNELS = ("app", "chat", "phone", "store", "email")
_INT_CHANNEL_P = np.array(
    [
        [0.35, 0.35, 0.15, 0.10, 0.05],
        [0.20, 0.25, 0.30, 0.15, 0.10],
        [0.05, 0.05, 0.55, 0.30, 0.05],
        [0.20, 0.20, 0.35, 0.15, 0.10],
    ]
)
_TOPICS = ("network", "billing", "service", "device", "other")
_OTHER_TOPIC_P = np.array([0.10, 0.35, 0.30, 0.20, 0.05])  # inquiries and requests
_COMPLAINT_REST_P = np.array([0.5, 0.3, 0.2])  # service / device / other
_KINDS = ("complaint", "inquiry", "request")
_CATEGORIES = ("topup", "bill", "addon", "device")
_CATEGORY_P = np.array([0.78, 0.0, 0.22, 0.0])  # prepaid purchases; postpaid pay "bill"s
_BILL = _CATEGORIES.index("bill")
_PLANS = ("postpaid", "prepaid")
_AREAS = ("urban", "rural")


@dataclass(frozen=True)
class GenerationSummary:
    """What :func:`generate` wrote.

    Attributes
    ----------
    out_dir
        Directory holding the seven tables and ``_truth/``.
    customers, months, seed
        The generation parameters.
    start, end
        First day covered and first day NOT covered (a natural default ``as_of``).
    rows
        Rows written per table.
    elapsed_seconds
        Wall time of the whole generation.
    """

    out_dir: Path
    customers: int
    months: int
    seed: int
    start: date
    end: date
    rows: dict[str, int]
    elapsed_seconds: float


def _rng(seed: int, stream: int, chunk: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream, chunk]))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _choice_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of ``probs`` (rows sum to 1)."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(probs.shape[0])[:, None]
    return np.minimum((u > cum).sum(axis=1), probs.shape[1] - 1)


def _labels(
    values: tuple[str, ...], codes: np.ndarray, null: np.ndarray | None = None, name: str = ""
) -> pl.Series:
    s = pl.Series(name, list(values), dtype=pl.String).gather(
        pl.Series(codes.astype(np.uint32, copy=False))
    )
    if null is not None and null.any():
        s = s.scatter(np.flatnonzero(null), None)
    return s.alias(name)


def _repeat_index(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner index, position within owner) for ``counts[i]`` rows per owner ``i``."""
    owner = np.repeat(np.arange(counts.size), counts)
    starts = np.cumsum(counts) - counts
    pos = np.arange(owner.size) - starts[owner]
    return owner, pos


@dataclass
class Calendar:
    """Month boundaries in days from ``start`` (``edges[m]`` = first day of month m)."""

    start: date
    months: int
    edges: np.ndarray  # int64, months + FUTURE_MONTHS + 1 entries

    @classmethod
    def build(cls, start: date, months: int) -> Calendar:
        first = np.datetime64(start, "M")
        ends = (first + np.arange(months + FUTURE_MONTHS + 1)).astype("datetime64[D]")
        edges = (ends - np.datetime64(start, "D")).astype(np.int64)
        return cls(start, months, edges)

    @property
    def end_day(self) -> int:
        return int(self.edges[self.months])

    @property
    def end(self) -> date:
        return self.dates(np.array([self.end_day]))[0].item()

    def lengths(self) -> np.ndarray:
        return np.diff(self.edges)

    def dates(self, days: np.ndarray) -> np.ndarray:
        return np.datetime64(self.start, "D") + days.astype("timedelta64[D]")

    def timestamps(self, days: np.ndarray) -> np.ndarray:
        """Float days -> datetime64[us], rounded to the second."""
        secs = np.floor(days * 86_400.0).astype(np.int64)
        return np.datetime64(self.start, "us") + (secs * 1_000_000).astype("timedelta64[us]")

    def month_of(self, days: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.edges, days, side="right") - 1


@dataclass
class World:
    """Global per-customer state (one array entry per customer, in customer id order)."""

    cal: Calendar
    params: WorldParams
    n: int
    persona: np.ndarray
    signup_day: np.ndarray  # int64, may be negative
    birth_day: np.ndarray  # int64, days from start
    birth_null: np.ndarray
    gender: np.ndarray
    gender_null: np.ndarray
    occupation: np.ndarray
    occupation_null: np.ndarray
    region: np.ndarray
    rural: np.ndarray
    area_null: np.ndarray
    prepaid: np.ndarray
    contract_months: np.ndarray  # int64, postpaid minimum term (0 for prepaid)
    contract_end_day: np.ndarray  # int64, end of the minimum term (days from start)
    monthly_bill: np.ndarray  # postpaid plan fee (0 for prepaid)
    device_instalment: np.ndarray  # monthly device instalment during the term (0: none)
    age_group: np.ndarray  # 0: <30, 1: 30-54, 2: 55+, 3: unknown (for channel mixes)
    price: np.ndarray
    net_bad: np.ndarray
    complaint_rate: np.ndarray
    satisfaction: np.ndarray
    usage_mult: np.ndarray  # (n, 3)
    lam: np.ndarray
    p_drop: np.ndarray
    nu: np.ndarray
    t0: np.ndarray  # first purchase (postpaid: first bill in the window), float days
    n_repeat: np.ndarray  # prepaid repeat purchases within the window (before churn)
    dead: np.ndarray  # prepaid purchase process died within the window (never postpaid)
    tau: np.ndarray  # dropout time (last purchase) for dead customers, nan otherwise
    complaints: np.ndarray  # (n, months) uint8, counterfactual (also after churn)
    unresolved: np.ndarray  # (n, months) uint8
    hazard: np.ndarray  # (n, months + FUTURE_MONTHS) float32, nan where not at risk
    churn_day: np.ndarray  # int64, -1 if still a customer at the end
    involuntary: np.ndarray  # bool, a postpaid churn that was a cut-off after unpaid bills
    edges_u: np.ndarray  # undirected call graph (u < v)
    edges_v: np.ndarray
    degree: np.ndarray

    @property
    def stop_day(self) -> np.ndarray:
        """First day without rows: churn_date, or the end of the data."""
        return np.where(self.churn_day >= 0, self.churn_day, self.cal.end_day)


def _persona_array(attr: str) -> np.ndarray:
    return np.array([float(getattr(p, attr)) for p in PERSONAS])


def _add_months(cal: Calendar, days: np.ndarray, months: np.ndarray) -> np.ndarray:
    """``days`` (from the start) plus whole calendar months, the day of the month kept (or
    the month's last day when it is shorter)."""
    d = cal.dates(days)
    first = d.astype("datetime64[M]")
    offset = (d - first.astype("datetime64[D]")).astype(np.int64)
    target = first + months.astype("timedelta64[M]")
    length = ((target + 1).astype("datetime64[D]") - target.astype("datetime64[D]")).astype(
        np.int64
    )
    end = target.astype("datetime64[D]") + np.minimum(offset, length - 1).astype("timedelta64[D]")
    return (end - np.datetime64(cal.start, "D")).astype(np.int64)


def _month_index(cal: Calendar, days: np.ndarray) -> np.ndarray:
    """Calendar month of each day, counted from the start month (negative before it)."""
    months = cal.dates(days).astype("datetime64[M]") - np.datetime64(cal.start, "M")
    return months.astype(np.int64)


def build_world(n: int, cal: Calendar, seed: int, params: WorldParams) -> World:
    """Draw every customer's traits, purchase process, call graph and monthly churn path."""
    rng = _rng(seed, _S_POPULATION)
    shares = _persona_array("share")
    persona = rng.choice(len(PERSONAS), size=n, p=shares / shares.sum()).astype(np.int8)
    end_day = cal.end_day

    age = rng.normal(_persona_array("age_mean")[persona], _persona_array("age_sd")[persona])
    age = np.clip(age, _persona_array("age_min")[persona], 95.0)
    birth_day = np.floor(-age * 365.25 + rng.random(n) * 30).astype(np.int64)
    pre = rng.random(n) < params.pre_start_share
    signup = np.where(
        pre,
        -np.ceil(rng.random(n) * params.max_tenure_years * 365.25),
        np.floor(rng.random(n) * end_day),
    ).astype(np.int64)
    signup = np.maximum(signup, birth_day + 16 * 365)  # nobody signed up before 16
    signup = np.minimum(signup, end_day - 1)

    male_p = np.where(persona == 1, 0.62, 0.5)
    gender = (rng.random(n) < male_p).astype(np.int8)
    occ_index = {o: i for i, o in enumerate(OCCUPATIONS)}
    occupation = np.zeros(n, dtype=np.int8)
    u_occ = rng.random(n)
    for k, p in enumerate(PERSONAS):
        ids = np.array([occ_index[o] for o in p.occupations])
        cum = np.cumsum(np.array(list(p.occupations.values())))
        sel = persona == k
        occupation[sel] = ids[np.minimum(np.searchsorted(cum, u_occ[sel]), ids.size - 1)]
    rural = rng.random(n) >= _persona_array("urban_share")[persona]
    w_reg = np.where(rural[:, None], np.array(REGION_WEIGHTS_RURAL), np.array(REGION_WEIGHTS_URBAN))
    region = _choice_rows(rng, w_reg / w_reg.sum(axis=1, keepdims=True)).astype(np.int8)
    prepaid = rng.random(n) < _persona_array("prepaid_share")[persona]
    birth_null = rng.random(n) < params.birth_null
    gender_null = rng.random(n) < params.gender_null
    occupation_null = rng.random(n) < params.occupation_null
    area_null = rng.random(n) < params.area_null
    age_group = np.select([age < 30, age < 55], [0, 1], 2).astype(np.int8)
    age_group[birth_null] = 3

    price = _persona_array("price_sensitivity")[persona] + rng.normal(0, 0.5, n)
    net_mean = np.where(
        rural, np.array(REGION_NETWORK_RURAL)[region], np.array(REGION_NETWORK_URBAN)[region]
    )
    net_bad = net_mean + rng.normal(0, NETWORK_CUSTOMER_SD, n)
    c_noise = rng.normal(0, 0.4, n)
    complaint_rate = _persona_array("complaint_rate")[persona] * np.exp(
        0.6 * net_bad + 0.3 * price + c_noise
    )
    # Persistent latent satisfaction, mostly driven by what the operator can observe (network
    # experience, the complaint-proneness behind the complaint counts, persona): NPS follows it.
    satisfaction = (
        1.5 * _persona_array("satisfaction")[persona]
        - 1.0 * net_bad
        - 0.5 * c_noise
        + rng.normal(0, 0.25, n)
    )
    usage_mult = np.exp(rng.normal(0, 0.25, (n, 3)))

    lam = rng.gamma(_persona_array("r")[persona], 1.0 / _persona_array("alpha")[persona])
    p_drop = rng.beta(_persona_array("a")[persona], _persona_array("b")[persona])
    nu = rng.gamma(_persona_array("gg_q")[persona], 1.0 / _persona_array("gg_gamma")[persona])

    # BG/NBD: a purchase at t0, then Poisson(lambda) repeats; drop after each with prob p.
    prng = _rng(seed, _S_PURCHASE)
    t0 = np.maximum(signup, 0) + prng.uniform(0.35, 0.85, n)
    span = end_day - t0
    k = prng.poisson(lam * span)
    d = prng.geometric(p_drop)
    dead = d <= k
    tau = np.full(n, np.nan)
    di = np.flatnonzero(dead)
    tau[di] = t0[di] + span[di] * prng.beta(d[di], k[di] - d[di] + 1)
    n_repeat = np.where(dead, d, k)

    # Postpaid: a minimum term from signup, then a monthly bill until the churn. The plan fee
    # is the customer's expected monthly spend under the same purchase and spend rates, and
    # the bill never "dies" the way a prepaid purchase process does: only a churn stops it.
    crng = _rng(seed, _S_CONTRACT)
    terms = np.asarray(params.contract_terms, dtype=np.int64)
    term_p = np.asarray(params.contract_term_p, dtype=np.float64)
    term = terms[_choice_rows(crng, np.broadcast_to(term_p / term_p.sum(), (n, terms.size)))]
    term = np.where(prepaid, 0, term)
    contract_end = _add_months(cal, signup, term)
    postpaid = ~prepaid
    monthly_bill = np.where(postpaid, BILL_DAYS * lam * _persona_array("gg_p")[persona] / nu, 0.0)
    first_bill = np.maximum(1.0, np.ceil((-0.5 - signup) / BILL_DAYS))
    t0 = np.where(postpaid, signup + first_bill * BILL_DAYS + 0.5, t0)
    dead &= prepaid
    tau[postpaid] = np.nan
    lo_i, hi_i = params.device_instalment
    device = postpaid & (crng.random(n) < params.device_plan_share)
    instalment = np.where(device, np.round(crng.uniform(lo_i, hi_i, n), 2), 0.0)

    eu, ev = _call_graph(n, region, persona, seed, params)
    degree = np.bincount(eu, minlength=n) + np.bincount(ev, minlength=n)

    world = World(
        cal=cal,
        params=params,
        n=n,
        persona=persona,
        signup_day=signup,
        birth_day=birth_day,
        birth_null=birth_null,
        gender=gender,
        gender_null=gender_null,
        occupation=occupation,
        occupation_null=occupation_null,
        region=region,
        rural=rural,
        area_null=area_null,
        prepaid=prepaid,
        contract_months=term,
        contract_end_day=contract_end,
        monthly_bill=monthly_bill,
        device_instalment=instalment,
        age_group=age_group,
        price=price,
        net_bad=net_bad,
        complaint_rate=complaint_rate,
        satisfaction=satisfaction,
        usage_mult=usage_mult,
        lam=lam,
        p_drop=p_drop,
        nu=nu,
        t0=t0,
        n_repeat=n_repeat,
        dead=dead,
        tau=tau,
        complaints=np.zeros((n, cal.months), dtype=np.uint8),
        unresolved=np.zeros((n, cal.months), dtype=np.uint8),
        hazard=np.full((n, cal.months + FUTURE_MONTHS), np.nan, dtype=np.float32),
        churn_day=np.full(n, -1, dtype=np.int64),
        involuntary=np.zeros(n, dtype=bool),
        edges_u=eu,
        edges_v=ev,
        degree=degree,
    )
    _simulate_months(world, seed)
    # A known share of postpaid departures are cut-offs: the last bills went unpaid first.
    churned = postpaid & (world.churn_day >= 0)
    world.involuntary = churned & (_rng(seed, _S_CONTRACT, 1).random(n) < params.involuntary_share)
    return world


def _call_graph(
    n: int, region: np.ndarray, persona: np.ndarray, seed: int, params: WorldParams
) -> tuple[np.ndarray, np.ndarray]:
    """Undirected call graph (Chung-Lu with heavy-tailed weights, mostly within region)."""
    rng = _rng(seed, _S_GRAPH)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    w = _persona_array("call_weight")[persona] * (rng.pareto(2.3, n) + 1.0)
    cw = np.cumsum(w)
    m = round(n * params.mean_degree / 2 * 1.02)
    u = np.minimum(np.searchsorted(cw, rng.random(m) * cw[-1], side="right"), n - 1)
    order = np.argsort(region, kind="stable")
    cws = np.cumsum(w[order])
    reg_sorted = region[order]
    lo_idx = np.searchsorted(reg_sorted, np.arange(len(REGIONS)), side="left")
    hi_idx = np.searchsorted(reg_sorted, np.arange(len(REGIONS)), side="right")
    cum0 = np.concatenate([[0.0], cws])
    r_u = region[u]
    lo_c, hi_c = cum0[lo_idx[r_u]], cum0[hi_idx[r_u]]
    same = rng.random(m) < params.same_region_edges
    x_same = lo_c + rng.random(m) * (hi_c - lo_c)
    v_same = order[np.minimum(np.searchsorted(cws, x_same, side="right"), n - 1)]
    v_any = np.minimum(np.searchsorted(cw, rng.random(m) * cw[-1], side="right"), n - 1)
    v = np.where(same, v_same, v_any)
    keep = u != v
    a, b = np.minimum(u, v)[keep], np.maximum(u, v)[keep]
    key = np.unique(a.astype(np.int64) * n + b)
    return key // n, key % n


def _simulate_months(w: World, seed: int) -> None:
    """Month by month: hazards, churn (with contagion over the call graph) and complaints."""
    rng = _rng(seed, _S_MONTHLY)
    cal, eff, n, months = w.cal, w.params.churn, w.n, w.cal.months
    edges = cal.edges
    base = static_logit(
        eff,
        _persona_array("churn_base_logit")[w.persona],
        w.net_bad,
        w.price,
        w.prepaid,
        w.satisfaction,
    )
    # Postpaid customers rarely leave inside their minimum term and most often when it ends.
    end_month = _month_index(cal, w.contract_end_day)
    postpaid = ~w.prepaid
    churn_month = np.full(n, -1, dtype=np.int64)
    cum_unres = np.zeros(n, dtype=np.int64)
    contagion = np.zeros(n)
    recent = np.zeros(n, dtype=np.int64)
    for m in range(months + FUTURE_MONTHS):
        t = edges[m]
        if m <= months:
            contagion = contagion_share(
                w.edges_u, w.edges_v, churn_month, w.signup_day < t, m, eff.contagion_months
            )
            recent = w.complaints[:, max(0, m - 3) : min(m, months)].sum(axis=1, dtype=np.int64)
        at_risk = w.signup_day < t
        h = monthly_hazard(
            eff,
            base,
            recent_complaints=recent,
            open_unresolved=cum_unres,
            tenure_days=t - w.signup_day,
            contagion=contagion,
            postpaid=postpaid,
            month=m,
            contract_end_month=end_month,
        )
        w.hazard[at_risk, m] = h[at_risk]
        if m >= months:
            continue
        u = rng.random(n)
        new = at_risk & (churn_month < 0) & (u < h)
        length = edges[m + 1] - t
        day = t + np.floor(rng.random(n) * length).astype(np.int64)
        w.churn_day[new] = day[new]
        churn_month[new] = m
        frac = np.clip((edges[m + 1] - np.maximum(w.signup_day, t)) / length, 0.0, 1.0)
        c, un = draw_complaints(rng, w.complaint_rate, frac, w.params.unresolved_complaint)
        w.complaints[:, m] = c
        w.unresolved[:, m] = un
        cum_unres += un


# --- per-chunk tables ----------------------------------------------------------------------


def _active_months(w: World, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Active interval ``[a_lo, a_hi)`` of each customer in each data month (days)."""
    e = w.cal.edges
    months = w.cal.months
    a_lo = np.maximum(e[None, :months], w.signup_day[lo:hi, None])
    a_hi = np.minimum(e[None, 1 : months + 1], w.stop_day[lo:hi, None])
    return a_lo, a_hi


def customers_chunk(w: World, lo: int, hi: int) -> pl.DataFrame:
    """Rows of the customers table for customers ``lo..hi-1``."""
    cal = w.cal
    sl = slice(lo, hi)
    churn = w.churn_day[sl]
    return pl.DataFrame(
        {
            "customer_id": np.arange(lo + 1, hi + 1, dtype=np.int64),
            "signup_date": cal.dates(w.signup_day[sl]),
            "birth_date": pl.Series(cal.dates(w.birth_day[sl])).scatter(
                np.flatnonzero(w.birth_null[sl]), None
            ),
            "gender": _labels(GENDERS, w.gender[sl], w.gender_null[sl]),
            "occupation": _labels(OCCUPATIONS, w.occupation[sl], w.occupation_null[sl]),
            "region": _labels(REGIONS, w.region[sl]),
            "area_type": _labels(_AREAS, w.rural[sl].astype(np.int8), w.area_null[sl]),
            "plan_type": _labels(_PLANS, w.prepaid[sl].astype(np.int8)),
            "contract_end_date": pl.Series(cal.dates(w.contract_end_day[sl])).scatter(
                np.flatnonzero(w.prepaid[sl]), None
            ),
            "churn_date": pl.Series(cal.dates(np.maximum(churn, 0))).scatter(
                np.flatnonzero(churn < 0), None
            ),
        }
    )


def transactions_chunk(w: World, lo: int, hi: int, seed: int, chunk: int) -> pl.DataFrame:
    """Prepaid purchases (BG/NBD times, Gamma-Gamma amounts); postpaid monthly bills (the
    plan fee with a little month-to-month noise), device instalments with the bills of the
    minimum term and add-ons, all until the customer stops paying (the churn, or
    ``unpaid_months`` bills before an involuntary cut-off); and a few refunds."""
    rng = _rng(seed, _S_TX, chunk)
    cal, sl = w.cal, slice(lo, hi)
    prepaid = w.prepaid[sl]
    n_rep = np.where(prepaid, w.n_repeat[sl], -1)
    owner, pos = _repeat_index(n_rep + 1)
    t0, tau, dead = w.t0[sl][owner], w.tau[sl][owner], w.dead[sl][owner]
    upper = np.where(dead, tau, float(cal.end_day))
    t = t0 + rng.random(owner.size) * (upper - t0)
    last = pos == n_rep[owner]
    t = np.where(pos == 0, t0, np.where(dead & last, tau, t))
    keep = t < w.stop_day[sl][owner]
    owner, t = owner[keep], t[keep]
    persona = w.persona[sl][owner]
    amount = rng.gamma(_persona_array("gg_p")[persona], 1.0 / w.nu[sl][owner])
    amount = np.maximum(np.round(amount, 2), 0.01)
    cat = _choice_rows(rng, np.broadcast_to(_CATEGORY_P, (owner.size, _CATEGORY_P.size)))
    # postpaid bills at t0, t0 + BILL_DAYS, ... before the churn (or the end of the data)
    signup = w.signup_day[sl].astype(np.float64)
    first = np.round((w.t0[sl] - 0.5 - signup) / BILL_DAYS)
    paying = w.stop_day[sl] - w.involuntary[sl] * w.params.unpaid_months * BILL_DAYS
    past = np.ceil((paying - 0.5 - signup) / BILL_DAYS) - 1  # last k with t_k < paying
    n_bills = np.where(prepaid, 0, np.maximum(past - first + 1, 0)).astype(np.int64)
    b_owner, b_pos = _repeat_index(n_bills)
    b_t = w.t0[sl][b_owner] + b_pos * BILL_DAYS
    noise = np.exp(rng.normal(0.0, w.params.bill_noise, b_owner.size))
    b_amount = np.maximum(np.round(w.monthly_bill[sl][b_owner] * noise, 2), 0.01)
    # device instalments with the bills of the minimum term
    d = np.flatnonzero(
        (w.device_instalment[sl][b_owner] > 0) & (b_t < w.contract_end_day[sl][b_owner])
    )
    # add-ons: a Poisson process while the customer pays
    start = np.where(prepaid, 0.0, np.maximum(signup, 0.0))
    span = np.where(prepaid, 0.0, np.maximum(paying - start, 0.0))
    a_owner, _ = _repeat_index(rng.poisson(w.params.addon_rate * span / BILL_DAYS))
    a_t = start[a_owner] + rng.random(a_owner.size) * span[a_owner]
    a_amount = np.maximum(
        np.round(rng.gamma(2.0, w.params.addon_mean / 2.0, a_owner.size), 2), 0.01
    )
    owner = np.concatenate([owner, b_owner, b_owner[d], a_owner])
    t = np.concatenate([t, b_t, b_t[d], a_t])
    amount = np.concatenate([amount, b_amount, w.device_instalment[sl][b_owner[d]], a_amount])
    cat = np.concatenate(
        [
            cat,
            np.full(b_owner.size, _BILL),
            np.full(d.size, _CATEGORIES.index("device")),
            np.full(a_owner.size, _CATEGORIES.index("addon")),
        ]
    )
    chan = _choice_rows(rng, _TX_CHANNEL_P[w.age_group[sl][owner]])
    # Refunds: the negative amount of an earlier purchase, a few days later.
    r = np.flatnonzero(rng.random(owner.size) < w.params.refund_rate)
    rt = t[r] + 0.5 + rng.exponential(4.0, r.size)
    ok = rt < w.stop_day[sl][owner[r]]
    r, rt = r[ok], rt[ok]
    owner = np.concatenate([owner, owner[r]])
    t = np.concatenate([t, rt])
    amount = np.concatenate([amount, -amount[r]])
    cat = np.concatenate([cat, cat[r]])
    chan = np.concatenate([chan, chan[r]])
    df = pl.DataFrame(
        {
            "customer_id": (owner + lo + 1).astype(np.int64),
            "ts": cal.timestamps(t),
            "amount": amount,
            "category": _labels(_CATEGORIES, cat),
            "channel": _labels(_TX_CHANNELS, chan),
        }
    )
    return df.sort("customer_id", "ts", "amount", maintain_order=True)


def usage_chunk(w: World, lo: int, hi: int, seed: int, chunk: int) -> pl.DataFrame:
    """Monthly usage by persona, customer multipliers and month noise; a few zero months."""
    rng = _rng(seed, _S_USAGE, chunk)
    a_lo, a_hi = _active_months(w, lo, hi)
    ci, mi = np.nonzero(a_hi > a_lo)
    frac = (a_hi - a_lo)[ci, mi] / w.cal.lengths()[mi]
    persona = w.persona[lo:hi][ci]
    mult = w.usage_mult[lo:hi][ci]
    noise = np.exp(rng.normal(0, 0.2, (ci.size, 3)))
    zero = rng.random(ci.size) < w.params.zero_usage_month
    scale = frac * ~zero
    growth = 1.0 + 0.01 * mi
    data = np.round(
        _persona_array("data_mb")[persona] * mult[:, 0] * noise[:, 0] * scale * growth, 1
    )
    voice = np.round(_persona_array("voice_min")[persona] * mult[:, 1] * noise[:, 1] * scale, 1)
    sms = np.round(_persona_array("sms")[persona] * mult[:, 2] * noise[:, 2] * scale)
    return pl.DataFrame(
        {
            "customer_id": (ci + lo + 1).astype(np.int64),
            "month": w.cal.dates(w.cal.edges[mi]),
            "data_mb": data,
            "voice_min": voice,
            "sms": sms,
        }
    )


def network_chunk(w: World, lo: int, hi: int, seed: int, chunk: int) -> pl.DataFrame:
    """Monthly network KPIs: region x area quality + customer noise + month noise."""
    rng = _rng(seed, _S_NETWORK, chunk)
    a_lo, a_hi = _active_months(w, lo, hi)
    ci, mi = np.nonzero(a_hi > a_lo)
    k = ci.size
    e = w.net_bad[lo:hi][ci] + rng.normal(0, 0.25, k)

    def ln(sd: float) -> np.ndarray:
        return np.exp(rng.normal(0, sd, k))

    kpis = {
        "dropped_call_rate": np.round(np.clip(0.008 * np.exp(0.6 * e) * ln(0.2), 0, 1), 5),
        "call_setup_success_rate": np.round(
            np.clip(1 - 0.012 * np.exp(0.5 * e) * ln(0.2), 0, 1), 5
        ),
        "avg_download_mbps": np.round(60 * np.exp(-0.55 * e) * ln(0.2) * (1 + 0.01 * mi), 2),
        "latency_ms": np.round(30 * np.exp(0.35 * e) * ln(0.15), 1),
        "packet_loss_pct": np.round(0.4 * np.exp(0.6 * e) * ln(0.25), 3),
        "coverage_5g_share": np.round(
            np.clip(_sigmoid(-0.3 - 1.3 * e + 0.08 * mi) + rng.normal(0, 0.03, k), 0, 1), 4
        ),
    }
    cols: dict[str, np.ndarray | pl.Series] = {
        "customer_id": (ci + lo + 1).astype(np.int64),
        "month": w.cal.dates(w.cal.edges[mi]),
    }
    for name, v in kpis.items():
        v[rng.random(k) < w.params.network_kpi_null] = np.nan
        cols[name] = pl.Series(name, v, nan_to_null=True)
    return pl.DataFrame(cols)


def interactions_chunk(w: World, lo: int, hi: int, seed: int, chunk: int) -> pl.DataFrame:
    """Complaints (from the simulated counts), inquiries and requests with their handling."""
    rng = _rng(seed, _S_INTERACTIONS, chunk)
    cal, sl = w.cal, slice(lo, hi)
    e = cal.edges
    # complaints: counts were drawn over [max(month start, signup), month end)
    cmp = w.complaints[sl].astype(np.int64)
    ci, mi = np.nonzero(cmp)
    counts = cmp[ci, mi]
    cell, pos = _repeat_index(counts)
    c_owner, c_month = ci[cell], mi[cell]
    unres = pos < w.unresolved[sl][c_owner, c_month]
    c_lo = np.maximum(e[c_month], w.signup_day[sl][c_owner])
    c_t = c_lo + rng.random(c_owner.size) * (e[c_month + 1] - c_lo)
    # inquiries and requests over the active part of each month
    a_lo, a_hi = _active_months(w, lo, hi)
    days = np.maximum(a_hi - a_lo, 0)
    rate = (
        _persona_array("inquiry_rate")[w.persona[sl]][:, None]
        * days
        / cal.lengths()[None, : cal.months]
    )
    cnt = rng.poisson(rate)
    oi, om = np.nonzero(cnt)
    cell, _ = _repeat_index(cnt[oi, om])
    o_owner, o_month = oi[cell], om[cell]
    o_t = a_lo[o_owner, o_month] + rng.random(o_owner.size) * days[o_owner, o_month]
    o_kind = np.where(rng.random(o_owner.size) < 0.6, 1, 2)
    o_unres = rng.random(o_owner.size) < w.params.unresolved_other

    owner = np.concatenate([c_owner, o_owner])
    t = np.concatenate([c_t, o_t])
    kind = np.concatenate([np.zeros(c_owner.size, np.int64), o_kind])
    never = np.concatenate([unres, o_unres])
    keep = t < w.stop_day[sl][owner]
    owner, t, kind, never = owner[keep], t[keep], kind[keep], never[keep]
    k = owner.size
    is_c = kind == 0
    net = w.net_bad[sl][owner]
    price = w.price[sl][owner]
    p_net = _sigmoid(-1.0 + 1.5 * net)
    p_bill = (1 - p_net) * _sigmoid(-0.3 + 1.0 * price)
    rest = 2 + _choice_rows(rng, np.broadcast_to(_COMPLAINT_REST_P, (k, 3)))
    u = rng.random(k)
    c_topic = np.where(u < p_net, 0, np.where(u < p_net + p_bill, 1, rest))
    o_topic = _choice_rows(rng, np.broadcast_to(_OTHER_TOPIC_P, (k, len(_TOPICS))))
    topic = np.where(is_c, c_topic, o_topic)
    mu = np.select(
        [is_c & (topic == 0), is_c, kind == 1], [np.log(48), np.log(30), np.log(4)], np.log(12)
    )
    hours = np.exp(mu + rng.normal(0, 1.0, k))
    closed = t + hours / 24.0
    stop = w.stop_day[sl][owner]
    churned = w.churn_day[sl][owner] >= 0
    closed = np.where(churned, np.minimum(closed, stop), closed)  # closed on leaving
    # a backlog of recent tickets is still pending at the end of the data
    pending = rng.random(k) < w.params.pending_recent * np.exp(-(cal.end_day - t) / 30.0)
    open_ = never | pending | (closed >= cal.end_day)
    sat = np.clip(
        np.round(
            3.9
            - 0.45 * np.log(hours / 24.0)
            + 0.5 * w.satisfaction[sl][owner]
            + rng.normal(0, 0.7, k)
        ),
        1,
        5,
    )
    rated = ~open_ & (rng.random(k) < w.params.rated_interaction)
    chan = _choice_rows(rng, _INT_CHANNEL_P[w.age_group[sl][owner]])
    closed_ts = pl.Series(cal.timestamps(np.where(open_, t, closed))).scatter(
        np.flatnonzero(open_), None
    )
    opened_ts = cal.timestamps(t)
    df = pl.DataFrame(
        {
            "customer_id": (owner + lo + 1).astype(np.int64),
            "opened_at": opened_ts,
            "closed_at": closed_ts,
            "channel": _labels(_INT_CHANNELS, chan),
            "kind": _labels(_KINDS, kind),
            "topic": _labels(_TOPICS, topic),
            "satisfaction": pl.Series(np.where(rated, sat, np.nan), nan_to_null=True).cast(
                pl.Int64
            ),
        }
    )
    return df.sort("customer_id", "opened_at", "kind", maintain_order=True)


def surveys_chunk(w: World, lo: int, hi: int, seed: int, chunk: int) -> pl.DataFrame:
    """NPS / CSAT answers driven by the latent satisfaction.

    NPS is strongly persistent per customer (small per-answer noise); the middle of the latent
    satisfaction lands in the passive band (7-8), about 40% of answers.
    """
    rng = _rng(seed, _S_SURVEYS, chunk)
    cal = w.cal
    a_lo, a_hi = _active_months(w, lo, hi)
    days = np.maximum(a_hi - a_lo, 0)
    p = w.params.survey_rate * days / cal.lengths()[None, : cal.months]
    ci, mi = np.nonzero(rng.random(p.shape) < p)
    k = ci.size
    t = a_lo[ci, mi] + rng.random(k) * days[ci, mi]
    sat = w.satisfaction[lo:hi][ci]
    nps = np.clip(np.round(7.4 + 2.0 * sat + rng.normal(0, 0.6, k)), 0, 10).astype(np.int64)
    csat = np.clip(np.round(3.7 + 0.7 * sat + rng.normal(0, 0.6, k)), 1, 5)
    csat[rng.random(k) < w.params.csat_null] = np.nan
    df = pl.DataFrame(
        {
            "customer_id": (ci + lo + 1).astype(np.int64),
            "answered_at": cal.timestamps(t),
            "nps": nps,
            "csat": pl.Series(csat, nan_to_null=True).cast(pl.Int64),
        }
    )
    return df.sort("customer_id", "answered_at", maintain_order=True)


@dataclass
class DirectedEdges:
    """Directed call edges sorted by (caller, callee), 0-based customer indices."""

    caller: np.ndarray
    callee: np.ndarray

    @classmethod
    def build(cls, w: World, seed: int) -> DirectedEdges:
        rng = _rng(seed, _S_GRAPH, 1)
        m = w.edges_u.size
        flip = rng.random(m) < 0.5
        a = np.where(flip, w.edges_v, w.edges_u)
        b = np.where(flip, w.edges_u, w.edges_v)
        rec = rng.random(m) < w.params.reciprocal_edges
        caller = np.concatenate([a, b[rec]])
        callee = np.concatenate([b, a[rec]])
        order = np.lexsort((callee, caller))
        return cls(caller[order], callee[order])


def calls_chunk(
    w: World, edges: DirectedEdges, lo: int, hi: int, seed: int, chunk: int
) -> pl.DataFrame:
    """Monthly call rows per directed edge, in months where both ends are active."""
    rng = _rng(seed, _S_CALLS, chunk)
    cal = w.cal
    i0, i1 = np.searchsorted(edges.caller, [lo, hi])
    a, b = edges.caller[i0:i1], edges.callee[i0:i1]
    first = np.maximum(cal.month_of(w.signup_day), 0)
    last = cal.month_of(w.stop_day - 1)
    m_lo = np.maximum(first[a], first[b])
    m_hi = np.minimum(last[a], last[b])
    span = np.maximum(m_hi - m_lo + 1, 0)
    use = rng.beta(w.params.edge_use_a, w.params.edge_use_b, a.size)
    intensity = rng.gamma(1.5, 3.0, a.size)
    e_idx, pos = _repeat_index(span)
    month = m_lo[e_idx] + pos
    keep = rng.random(e_idx.size) < use[e_idx]
    e_idx, month = e_idx[keep], month[keep]
    k = e_idx.size
    n_calls = 1 + rng.poisson(intensity[e_idx])
    minutes = np.round(n_calls * np.exp(rng.normal(np.log(2.5), 0.8, k)), 1)
    return pl.DataFrame(
        {
            "caller_id": (a[e_idx] + 1).astype(np.int64),
            "callee_id": (b[e_idx] + 1).astype(np.int64),
            "month": cal.dates(cal.edges[month]),
            "n_calls": n_calls.astype(np.int64),
            "minutes": minutes,
        }
    )


def _check_schema(name: str, df: pl.DataFrame) -> pl.DataFrame:
    target = INPUT_TABLES[name].polars_schema()
    return df.select([pl.col(c).cast(t) for c, t in target.items()])


def generate(
    out_dir: Path,
    customers: int = 20_000,
    months: int = 24,
    seed: int = 0,
    start: date = date(2023, 1, 1),
    chunk_size: int = 100_000,
    progress: Callable[[int, int], None] | None = None,
    params: WorldParams | None = None,
) -> GenerationSummary:
    """Generate a synthetic operator's seven input tables and the ground truth behind them.

    Parameters
    ----------
    out_dir
        Output directory, replaced atomically: ``<table>/part-NNNNN.parquet`` for each
        table of ``crm_engine.contracts.INPUT_TABLES``, plus ``_truth/`` (see
        :mod:`crm_engine.generator.truth`).
    customers
        Number of customers (ids ``1..customers``).
    months
        Months of history, starting at ``start``.
    seed
        Seed of every random draw: same arguments give the same bytes.
    start
        First day of the data; must be the first day of a month.
    chunk_size
        Customers per part file (part of the determinism contract: change it and the
        bytes change).
    progress
        Called as ``progress(done, total)`` after the global simulation (``done=0``) and
        after each chunk.
    params
        The operator-wide knobs and the planted churn effects (default
        :class:`~crm_engine.generator.personas.WorldParams`), recorded in ``params.json``:
        e.g. ``WorldParams(churn=ChurnEffects(contagion=0.0))`` plants no contagion.

    Returns
    -------
    GenerationSummary
        Row counts per table, ``start``, ``end`` (first day not covered) and wall time.

    Raises
    ------
    ValueError
        If a size is not positive or ``start`` is not the first day of a month.
    """
    from crm_engine.commit import atomic_directory
    from crm_engine.generator.truth import (
        HazardWriter,
        write_params,
        write_truth_customers,
        write_truth_history,
    )

    if customers < 1:
        raise ValueError(f"customers={customers} should be >= 1")
    if months < 1:
        raise ValueError(f"months={months} should be >= 1")
    if chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size} should be >= 1")
    if start.day != 1:
        raise ValueError(f"start={start.isoformat()} should be the first day of a month")
    t_start = time.perf_counter()
    cal = Calendar.build(start, months)
    params = params or WorldParams()
    world = build_world(customers, cal, seed, params)
    edges = DirectedEdges.build(world, seed)
    n_chunks = -(-customers // chunk_size)
    if progress is not None:
        progress(0, n_chunks)
    rows = dict.fromkeys(INPUT_TABLES, 0)
    with atomic_directory(Path(out_dir)) as tmp:
        truth = tmp / "_truth"
        truth.mkdir()
        for name in INPUT_TABLES:
            (tmp / name).mkdir()
        with HazardWriter(truth / "churn_hazard.parquet", cal) as hazard_writer:
            for chunk in range(n_chunks):
                lo, hi = chunk * chunk_size, min((chunk + 1) * chunk_size, customers)
                frames = {
                    "customers": customers_chunk(world, lo, hi),
                    "transactions": transactions_chunk(world, lo, hi, seed, chunk),
                    "usage": usage_chunk(world, lo, hi, seed, chunk),
                    "network": network_chunk(world, lo, hi, seed, chunk),
                    "interactions": interactions_chunk(world, lo, hi, seed, chunk),
                    "surveys": surveys_chunk(world, lo, hi, seed, chunk),
                    "calls": calls_chunk(world, edges, lo, hi, seed, chunk),
                }
                for name, df in frames.items():
                    df = _check_schema(name, df)
                    df.write_parquet(
                        tmp / name / f"part-{chunk:05d}.parquet",
                        compression="zstd",
                        statistics=True,
                    )
                    rows[name] += df.height
                hazard_writer.write(world, lo, hi)
                del frames
                if progress is not None:
                    progress(chunk + 1, n_chunks)
        write_truth_customers(world, truth / "customers.parquet")
        write_truth_history(world, truth)
        write_params(world, seed, truth / "params.json")
    return GenerationSummary(
        out_dir=Path(out_dir),
        customers=customers,
        months=months,
        seed=seed,
        start=start,
        end=cal.end,
        rows=rows,
        elapsed_seconds=time.perf_counter() - t_start,
    )
