"""Revenue holdout: what each value model said a customer would pay, against what they paid.

The models are refitted with the cut moved back by the CLV horizon (``as_of -
horizon_days``), every customer still there at the cut is valued by them without discounting
or margin (so the "CLV" is the revenue expected over the horizon), and that is compared with
the revenue each really brought in ``[cut, as_of)``: the mean absolute error per customer, by
plan type (prepaid, postpaid) and by model (the purchase model for both, the contract
retention models ``sbg`` and ``hazard`` for postpaid). ``valuation.postpaid_model = "auto"``
values postpaid customers by whichever has the lowest postpaid error.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from crm_engine.config import ValuationConfig
from features import PointInTime, revenue_between
from valuation.base import ValuationError
from valuation.select import CONTRACT_MODELS, contract_candidates, make_contract_model
from valuation.stage import btyd_statistics, fit_models, value_customers

__all__ = ["PLAN_TYPES", "RevenueHoldout", "revenue_holdout"]

PLAN_TYPES = ("prepaid", "postpaid")


@dataclass(frozen=True)
class RevenueHoldout:
    """Per plan type and model: ``customers``, ``mae`` (per customer), ``mean_predicted``,
    ``mean_actual`` of the revenue over ``days`` from ``cut``; ``purchase_model`` names the
    purchase model, ``sbg`` and ``hazard`` the contract models (postpaid only, absent when
    one could not be fitted: ``errors``)."""

    cut: dt.date
    days: int
    purchase_model: str
    rows: list[dict[str, Any]]
    errors: dict[str, str]

    def mae(self, plan_type: str, model: str) -> float | None:
        """The error of ``model`` on ``plan_type`` customers (None: not measured)."""
        for row in self.rows:
            if row["plan_type"] == plan_type and row["model"] == model:
                return float(row["mae"])
        return None

    def contract_errors(self) -> dict[str, float]:
        """The postpaid error of each contract model measured, by name."""
        out = {}
        for name in CONTRACT_MODELS:
            mae = self.mae("postpaid", name)
            if mae is not None:
                out[name] = mae
        return out

    def postpaid_choice(self) -> str:
        """The contract model with the lowest postpaid error when it beats the purchase
        model's (ties: the first of ``CONTRACT_MODELS``), else the purchase model."""
        contract = self.contract_errors()
        purchase = self.mae("postpaid", self.purchase_model)
        if contract:
            best = min(contract, key=lambda name: contract[name])
            if purchase is None or contract[best] < purchase:
                return best
        return self.purchase_model

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (aggregates only)."""
        return {
            "cut": self.cut.isoformat(),
            "days": self.days,
            "purchase_model": self.purchase_model,
            "rows": self.rows,
            "errors": self.errors,
            "postpaid_choice": self.postpaid_choice(),
        }


def revenue_holdout(
    at: PointInTime,
    cfg: ValuationConfig,
    purchase_model: str,
    contract_models: Sequence[str] | None = None,
) -> RevenueHoldout:
    """Refit at ``at.as_of - cfg.horizon_days`` and compare the predicted revenue of the next
    horizon with the real one, per plan type and model (see the module docstring).

    Parameters
    ----------
    at
        The run's point in time: its profiles and tables, the data's first day (the contract
        models' left truncation) and ``sample``, the customers compared on (the pipeline
        bounds it as the purchase holdout).
    purchase_model
        The purchase model to refit (the run's, after its own holdout selection).
    contract_models
        The contract models to refit (None: :func:`valuation.select.contract_candidates` of
        ``cfg.postpaid_model``, measured).

    Raises
    ------
    ValuationError
        When the cut falls before the data starts, or the purchase model cannot be fitted
        there.
    """
    days, since, sample = cfg.horizon_days, at.start.first_day, at.sample
    cut = at.as_of - dt.timedelta(days=days)
    if since is None or cut <= since:
        raise ValuationError(
            f"revenue holdout: the cut {cut} (as_of - valuation.horizon_days) is not after the "
            f"first transaction ({since}); it needs {days} days of history before as_of"
        )
    plain = cfg.model_copy(update={"annual_discount_rate": 0.0, "margin": 1.0})
    profile = at.profile_at(cut, sample)  # the customers still there at the cut
    models = fit_models(btyd_statistics(profile), plain, purchase_model)
    predicted = {purchase_model: value_customers(profile, plain, models)[0]}
    errors: dict[str, str] = {}
    at_cut = dataclasses.replace(at, as_of=cut)
    if contract_models is None:
        names = contract_candidates(cfg, measured=True)
    else:
        names = tuple(contract_models)
    for name in names:
        try:
            retention = make_contract_model(name, cfg).fit_at(at_cut)
            contract = dataclasses.replace(models, retention=retention)
            predicted[name] = value_customers(profile, plain, contract)[0]
        except ValuationError as e:
            errors[name] = str(e)
    actual = (
        profile.select("customer_id", "plan_type")
        .join(
            revenue_between(at.sample_tables()["transactions"], cut, at.as_of, sample).collect(),
            on="customer_id",
            how="left",
        )
        .with_columns(pl.col("actual").fill_null(0.0))
    )
    rows: list[dict[str, Any]] = []
    for model, values in predicted.items():
        joined = actual.join(
            values.select("customer_id", pl.col("clv").alias("predicted")),
            on="customer_id",
            how="left",
        )
        kinds = ("postpaid",) if model in CONTRACT_MODELS else PLAN_TYPES
        for kind in kinds:
            part = joined.filter(pl.col("plan_type") == kind)
            if part.height == 0:
                continue
            rows.append(
                {
                    "plan_type": kind,
                    "model": model,
                    "customers": part.height,
                    "mae": float((part["predicted"] - part["actual"]).abs().mean()),  # type: ignore[arg-type]
                    "mean_predicted": float(part["predicted"].mean()),  # type: ignore[arg-type]
                    "mean_actual": float(part["actual"].mean()),  # type: ignore[arg-type]
                }
            )
    return RevenueHoldout(
        cut=cut, days=days, purchase_model=purchase_model, rows=rows, errors=errors
    )
