"""Ground truth of the synthetic operator (``_truth/``) and the oracle churn probability.

``_truth/`` holds what the pipeline must never read, only tests and benchmarks:

- ``customers.parquet``: per customer ``persona``, the BG/NBD ``lambda_per_day`` and
  ``p_dropout``, the persona's Gamma-Gamma ``gg_p``/``gg_q``/``gg_gamma``, the customer's
  spend rate ``nu`` (mean spend per purchase ``gg_p / nu``), the latent ``satisfaction``,
  ``dropout_date`` (date of the last purchase of a purchase process that died within the
  window, null if alive at the end; never for postpaid), plus ``signup_date``,
  ``churn_date``, ``first_purchase_at`` (start of the observed purchase process; postpaid:
  the first bill in the window), ``network_badness``, ``price_sensitivity``,
  ``complaint_rate`` (complaints in a whole month of being a customer), ``call_degree``,
  and for postpaid customers ``contract_months`` (the minimum term),
  ``contract_end_date`` and ``monthly_bill`` (the plan fee: ``lambda_per_day x gg_p / nu``
  over a 365.25 / 12-day month; each bill is it times a little noise), ``device_instalment``
  (paid with each bill of the minimum term; 0 without a device plan) and ``involuntary``
  (for a postpaid customer who left: cut off after ``unpaid_months`` unpaid bills). Prepaid
  customers buy by the BG/NBD and Gamma-Gamma processes; postpaid customers pay a bill
  every month, and buy add-ons (``addon_rate`` a month, ``addon_mean`` each), until they
  stop paying (null for prepaid in the contract columns).
- ``churn_hazard.parquet``: ``customer_id, month, hazard`` for every month in which the
  customer is at risk (signed up before the month starts), over the data and 12 months
  past its end. After a churn the row holds the counterfactual hazard (what it would have
  been had the customer stayed), so an oracle at any ``as_of`` is never informed by the
  outcome. Months past the end are computed from the state at the end.
- ``complaints.parquet``: ``customer_id, month, complaints, unresolved``: the complaints
  made in each data month and how many of them are never resolved (months without one left
  out; after a churn the counterfactual counts, which no table shows).
- ``call_graph.parquet``: ``customer_id, contact_id`` (``customer_id < contact_id``): the
  undirected call graph the contagion runs over (the calls table shows only the months an
  edge was used).
- ``params.json``: persona parameters, the churn effects and the run's start/end/seed.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from crm_engine.generator.personas import PERSONAS

if TYPE_CHECKING:
    from crm_engine.generator.simulate import Calendar, World

_HAZARD_SCHEMA = pa.schema(
    [("customer_id", pa.int64()), ("month", pa.date32()), ("hazard", pa.float64())]
)


class HazardWriter:
    """Append the churn hazard truth chunk by chunk to one Parquet file."""

    def __init__(self, path: Path, cal: Calendar) -> None:
        self.path = Path(path)
        self.cal = cal
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> HazardWriter:
        self._writer = pq.ParquetWriter(self.path, _HAZARD_SCHEMA, compression="zstd")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def write(self, world: World, lo: int, hi: int) -> int:
        """Write the hazards of customers ``lo..hi-1``; returns the row count."""
        if self._writer is None:
            raise RuntimeError("HazardWriter used outside its `with` block")
        h = world.hazard[lo:hi]
        ci, mi = np.nonzero(~np.isnan(h))
        df = pl.DataFrame(
            {
                "customer_id": (ci + lo + 1).astype(np.int64),
                "month": self.cal.dates(self.cal.edges[mi]),
                "hazard": h[ci, mi].astype(np.float64),
            }
        )
        self._writer.write_table(df.to_arrow().cast(_HAZARD_SCHEMA))
        return df.height


def write_truth_customers(world: World, path: Path) -> None:
    """Per-customer truth (one file, all customers)."""
    cal = world.cal
    persona_names = pl.Series([p.name for p in PERSONAS])
    gg_p = np.array([p.gg_p for p in PERSONAS])[world.persona]
    gg_q = np.array([p.gg_q for p in PERSONAS])[world.persona]
    gg_gamma = np.array([p.gg_gamma for p in PERSONAS])[world.persona]
    tau = np.where(world.dead, world.tau, 0.0)
    dropout = pl.Series(cal.dates(np.floor(tau).astype(np.int64))).scatter(
        np.flatnonzero(~world.dead), None
    )
    churn = pl.Series(cal.dates(np.maximum(world.churn_day, 0))).scatter(
        np.flatnonzero(world.churn_day < 0), None
    )
    df = pl.DataFrame(
        {
            "customer_id": np.arange(1, world.n + 1, dtype=np.int64),
            "persona": persona_names.gather(pl.Series(world.persona.astype(np.uint32))),
            "lambda_per_day": world.lam,
            "p_dropout": world.p_drop,
            "gg_p": gg_p,
            "gg_q": gg_q,
            "gg_gamma": gg_gamma,
            "nu": world.nu,
            "satisfaction": world.satisfaction,
            "dropout_date": dropout,
            "signup_date": cal.dates(world.signup_day),
            "churn_date": churn,
            "first_purchase_at": cal.timestamps(world.t0),
            "network_badness": world.net_bad,
            "price_sensitivity": world.price,
            "complaint_rate": world.complaint_rate,
            "call_degree": world.degree.astype(np.int64),
            "contract_months": pl.Series(world.contract_months, dtype=pl.Int64).scatter(
                np.flatnonzero(world.prepaid), None
            ),
            "contract_end_date": pl.Series(cal.dates(world.contract_end_day)).scatter(
                np.flatnonzero(world.prepaid), None
            ),
            "monthly_bill": pl.Series(world.monthly_bill).scatter(
                np.flatnonzero(world.prepaid), None
            ),
            "device_instalment": pl.Series(world.device_instalment).scatter(
                np.flatnonzero(world.prepaid), None
            ),
            "involuntary": pl.Series(world.involuntary).scatter(
                np.flatnonzero(world.prepaid | (world.churn_day < 0)), None
            ),
        }
    )
    df.write_parquet(path, compression="zstd")


def write_truth_history(world: World, truth_dir: Path) -> None:
    """The monthly complaint counts and the call graph behind the churn hazard."""
    ci, mi = np.nonzero(world.complaints)
    pl.DataFrame(
        {
            "customer_id": (ci + 1).astype(np.int64),
            "month": world.cal.dates(world.cal.edges[mi]),
            "complaints": world.complaints[ci, mi].astype(np.int64),
            "unresolved": world.unresolved[ci, mi].astype(np.int64),
        }
    ).write_parquet(Path(truth_dir) / "complaints.parquet", compression="zstd")
    pl.DataFrame(
        {
            "customer_id": (world.edges_u + 1).astype(np.int64),
            "contact_id": (world.edges_v + 1).astype(np.int64),
        }
    ).write_parquet(Path(truth_dir) / "call_graph.parquet", compression="zstd")


def write_params(world: World, seed: int, path: Path) -> None:
    """Persona parameters, churn effects and run facts as JSON."""
    cal = world.cal
    shares = np.array([p.share for p in PERSONAS])
    doc = {
        "start": cal.start.isoformat(),
        "end": cal.end.isoformat(),
        "months": cal.months,
        "future_months": int(world.hazard.shape[1] - cal.months),
        "customers": world.n,
        "seed": seed,
        "personas": {
            p.name: {
                "share": float(p.share / shares.sum()),
                "bgnbd": {"r": p.r, "alpha": p.alpha, "a": p.a, "b": p.b},
                "gamma_gamma": {"p": p.gg_p, "q": p.gg_q, "gamma": p.gg_gamma},
                "churn": {"base_logit": p.churn_base_logit},
                "parameters": p.to_json(),
            }
            for p in PERSONAS
        },
        "churn_effects": world.params.churn.to_json(),
        "world": world.params.to_json(),
    }
    Path(path).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def true_churn_probability(truth_dir: Path, as_of: date, horizon_days: int) -> pl.DataFrame:
    """The oracle probability that each customer active at ``as_of`` churns within the horizon,
    from the hazards realised in the window.

    These hazards move with what happens after ``as_of`` (complaints, unresolved tickets,
    contacts who leave), which no model can see at the cut;
    :func:`~crm_engine.generator.as_of_churn_probability` is the oracle of what could be known.

    ``p_churn = 1 - prod((1 - hazard_m) ** w_m)`` over the months overlapping the label window
    of days ``(as_of, as_of + horizon_days]``, where ``w_m`` is the share of month ``m``'s days
    in the window (1 for whole months, so for an ``as_of`` on the first of a month and a
    window of whole months this is ``1 - prod(1 - hazard)``). A customer is active at
    ``as_of`` when ``signup_date < as_of`` and ``churn_date`` is null or after ``as_of``.

    Parameters
    ----------
    truth_dir
        The ``_truth`` directory written by :func:`crm_engine.generator.generate`.
    as_of
        First day not observed.
    horizon_days
        Length of the label window in days (> 0).

    Returns
    -------
    pl.DataFrame
        ``customer_id`` (Int64), ``p_churn`` (Float64 in [0, 1]), one row per active
        customer, sorted by ``customer_id``.
    """
    if horizon_days <= 0:
        raise ValueError(f"horizon_days={horizon_days} should be > 0")
    truth_dir = Path(truth_dir)
    win_lo = as_of + timedelta(days=1)
    win_hi = as_of + timedelta(days=horizon_days + 1)  # exclusive
    active = (
        pl.scan_parquet(truth_dir / "customers.parquet")
        .filter(
            (pl.col("signup_date") < as_of)
            & (pl.col("churn_date").is_null() | (pl.col("churn_date") > as_of))
        )
        .select("customer_id")
    )
    month_end = pl.col("month").dt.offset_by("1mo")
    overlap = (
        (pl.min_horizontal(month_end, pl.lit(win_hi)) - pl.max_horizontal("month", pl.lit(win_lo)))
        .dt.total_days()
        .clip(lower_bound=0)
    )
    weight = overlap / (month_end - pl.col("month")).dt.total_days()
    log_surv = (
        pl.scan_parquet(truth_dir / "churn_hazard.parquet")
        .filter((pl.col("month") < win_hi) & (month_end > win_lo))
        .with_columns((weight * (1.0 - pl.col("hazard")).log()).alias("log_surv"))
        .group_by("customer_id")
        .agg(pl.col("log_surv").sum())
    )
    return (
        active.join(log_surv, on="customer_id", how="left")
        .select(
            pl.col("customer_id").cast(pl.Int64),
            (1.0 - pl.col("log_surv").fill_null(0.0).exp()).clip(0.0, 1.0).alias("p_churn"),
        )
        .sort("customer_id")
        .collect()
    )
