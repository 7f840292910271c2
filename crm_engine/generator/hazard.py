"""The monthly churn hazard of the synthetic operator, defined once: the simulation draws its
churns from it and the as-of oracle (:mod:`crm_engine.generator.oracle`) simulates forward with
it, so the oracle can never drift from the world it judges."""

from __future__ import annotations

import numpy as np

from crm_engine.generator.personas import ChurnEffects

__all__ = ["contagion_share", "draw_complaints", "monthly_hazard", "static_logit"]

COMPLAINTS_CAP = 255
"""Most complaints a customer makes in a month (stored as uint8)."""


def static_logit(
    eff: ChurnEffects,
    persona_logit: np.ndarray,
    network_badness: np.ndarray,
    price_sensitivity: np.ndarray,
    prepaid: np.ndarray,
    satisfaction: np.ndarray,
) -> np.ndarray:
    """The part of each customer's hazard logit that never changes: persona and latent traits."""
    return (
        persona_logit
        + eff.network_badness * network_badness
        + eff.price_sensitivity * price_sensitivity
        + eff.prepaid * prepaid
        + eff.satisfaction * satisfaction
    )


def contagion_share(
    edges_u: np.ndarray,
    edges_v: np.ndarray,
    churn_month: np.ndarray,
    signed: np.ndarray,
    month: int,
    months_back: int,
) -> np.ndarray:
    """Share of each customer's call contacts who churned in the ``months_back`` months
    before ``month``, among the contacts who are (or were) customers by the month's start.

    ``churn_month`` is each customer's churn month (-1: none), ``signed`` whether they
    signed up before the month starts; the undirected graph is ``edges_u[i] -- edges_v[i]``.
    A contact who has not signed up yet is nobody whose leaving could be seen.
    """
    n = churn_month.size
    lo = max(0, month - months_back)
    recent = ((churn_month >= lo) & (churn_month < month)).astype(np.float64)
    hits = np.bincount(edges_u, recent[edges_v], minlength=n) + np.bincount(
        edges_v, recent[edges_u], minlength=n
    )
    signed_f = signed.astype(np.float64)
    known = np.bincount(edges_u, signed_f[edges_v], minlength=n) + np.bincount(
        edges_v, signed_f[edges_u], minlength=n
    )
    return hits / np.maximum(known, 1.0)


def monthly_hazard(
    eff: ChurnEffects,
    base: np.ndarray,
    *,
    recent_complaints: np.ndarray,
    open_unresolved: np.ndarray,
    tenure_days: np.ndarray,
    contagion: np.ndarray,
    postpaid: np.ndarray,
    month: int,
    contract_end_month: np.ndarray,
) -> np.ndarray:
    """Each customer's probability of churning in ``month``, from the state at its start.

    Parameters
    ----------
    eff
        The planted effects.
    base
        :func:`static_logit`.
    recent_complaints
        Complaints made in the 3 months before ``month``.
    open_unresolved
        Never-resolved complaints opened in the months before ``month``.
    tenure_days
        Days from signup to the month's start.
    contagion
        :func:`contagion_share`.
    postpaid
        Whether the customer is on a contract.
    month
        Calendar month (counted from the data's first month).
    contract_end_month
        Calendar month in which the minimum term ends (ignored for prepaid customers).
    """
    logit = (
        base
        + eff.recent_complaints * np.minimum(recent_complaints, eff.recent_complaints_cap)
        + eff.open_unresolved * np.minimum(open_unresolved, eff.open_unresolved_cap)
        + eff.short_tenure * (tenure_days < 365)
        + eff.contagion * contagion
        + eff.in_contract * (postpaid & (month < contract_end_month))
        + eff.contract_end
        * (
            postpaid
            & (month >= contract_end_month)
            & (month < contract_end_month + eff.contract_end_months)
        )
    )
    return 1.0 / (1.0 + np.exp(-logit))


def draw_complaints(
    rng: np.random.Generator,
    rate: np.ndarray,
    exposure: np.ndarray,
    p_unresolved: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Complaints in (a part of) a month and how many of them are never resolved.

    ``rate`` is each customer's complaints per month, ``exposure`` the share of the month
    (in ``[0, 1]``) in which they can complain. Returns ``(complaints, unresolved)``.
    """
    c = np.minimum(rng.poisson(rate * exposure), COMPLAINTS_CAP)
    return c, rng.binomial(c, p_unresolved)
