"""The six customer personas of the synthetic operator and the known effects behind churn."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

REGIONS: tuple[str, ...] = (
    "Capital",
    "South",
    "East",
    "Coast",
    "North",
    "West",
    "Highlands",
    "Islands",
)
"""The operator's eight regions (the first four mostly urban, the last four mostly rural)."""

# P(region | area type): urban customers live mostly in the big-city regions.
REGION_WEIGHTS_URBAN: tuple[float, ...] = (0.34, 0.20, 0.16, 0.12, 0.07, 0.06, 0.03, 0.02)
REGION_WEIGHTS_RURAL: tuple[float, ...] = (0.02, 0.08, 0.08, 0.10, 0.20, 0.20, 0.18, 0.14)

# Network badness (a latent z-score, higher = worse experience) by region and area type.
# Rural Highlands and Islands are clearly the worst places to be a customer.
REGION_NETWORK_URBAN: tuple[float, ...] = (-0.6, -0.4, -0.3, -0.2, -0.1, 0.0, 0.3, 0.4)
REGION_NETWORK_RURAL: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.8, 0.9, 1.8, 2.0)
NETWORK_CUSTOMER_SD = 0.35
"""Spread of the persistent customer-level network badness around its region x area mean."""

GENDERS: tuple[str, ...] = ("female", "male")
OCCUPATIONS: tuple[str, ...] = (
    "employee",
    "freelancer",
    "student",
    "executive",
    "business_owner",
    "retired",
    "homemaker",
    "farmer",
    "manual_worker",
)


@dataclass(frozen=True)
class Persona:
    """Parameters of one persona (all rates per day unless said otherwise).

    The BG/NBD parameters follow lifetimes: ``lambda ~ Gamma(shape=r, rate=alpha)``,
    ``p ~ Beta(a, b)``. The Gamma-Gamma spend model too: a transaction's amount
    ``z ~ Gamma(shape=gg_p, rate=nu)`` with ``nu ~ Gamma(shape=gg_q, rate=gg_gamma)``.
    """

    name: str
    share: float
    age_mean: float
    age_sd: float
    age_min: float
    occupations: dict[str, float]
    urban_share: float
    prepaid_share: float
    # BG/NBD (days)
    r: float
    alpha: float
    a: float
    b: float
    # Gamma-Gamma
    gg_p: float
    gg_q: float
    gg_gamma: float
    # monthly usage means
    data_mb: float
    voice_min: float
    sms: float
    # behaviour
    price_sensitivity: float
    complaint_rate: float  # complaints per month at average network and price sensitivity
    inquiry_rate: float  # inquiries + requests per month
    satisfaction: float  # mean of the latent satisfaction
    churn_base_logit: float
    call_weight: float  # scales the expected degree in the call graph
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The persona's parameters as plain JSON values."""
        d = asdict(self)
        d.pop("extra")
        return d


def _gg_gamma(mean_spend: float, p: float, q: float) -> float:
    """Gamma-Gamma ``gamma`` giving ``E[p / nu] = mean_spend`` (``= p * gamma / (q - 1)``)."""
    return mean_spend * (q - 1.0) / p


PERSONAS: tuple[Persona, ...] = (
    Persona(
        name="urban_streamer",
        share=0.20,
        age_mean=27,
        age_sd=5,
        age_min=18,
        occupations={"employee": 0.6, "freelancer": 0.25, "student": 0.15},
        urban_share=0.95,
        prepaid_share=0.45,
        r=4.0,
        alpha=40.0,
        a=1.0,
        b=176.0,
        gg_p=4.0,
        gg_q=10.0,
        gg_gamma=_gg_gamma(28.0, 4.0, 10.0),
        data_mb=28_000,
        voice_min=120,
        sms=40,
        price_sensitivity=0.0,
        complaint_rate=0.05,
        inquiry_rate=0.08,
        satisfaction=0.1,
        churn_base_logit=-4.9,
        call_weight=1.2,
    ),
    Persona(
        name="business_high_spender",
        share=0.12,
        age_mean=45,
        age_sd=8,
        age_min=25,
        occupations={"executive": 0.5, "business_owner": 0.3, "employee": 0.2},
        urban_share=0.90,
        prepaid_share=0.05,
        r=4.0,
        alpha=64.0,
        a=1.0,
        b=292.0,
        gg_p=4.0,
        gg_q=10.0,
        gg_gamma=_gg_gamma(140.0, 4.0, 10.0),
        data_mb=12_000,
        voice_min=1_100,
        sms=90,
        price_sensitivity=-1.0,
        complaint_rate=0.04,
        inquiry_rate=0.10,
        satisfaction=0.3,
        churn_base_logit=-5.4,
        call_weight=2.0,
    ),
    Persona(
        name="rural_voice_senior",
        share=0.15,
        age_mean=71,
        age_sd=6,
        age_min=60,
        occupations={"retired": 0.9, "farmer": 0.1},
        urban_share=0.20,
        prepaid_share=0.60,
        r=4.0,
        alpha=80.0,
        a=1.0,
        b=254.0,
        gg_p=4.0,
        gg_q=10.0,
        gg_gamma=_gg_gamma(14.0, 4.0, 10.0),
        data_mb=300,
        voice_min=750,
        sms=15,
        price_sensitivity=0.6,
        complaint_rate=0.03,
        inquiry_rate=0.06,
        satisfaction=0.4,
        churn_base_logit=-5.6,
        call_weight=0.7,
    ),
    Persona(
        name="budget_family",
        share=0.22,
        age_mean=40,
        age_sd=7,
        age_min=25,
        occupations={"employee": 0.55, "homemaker": 0.3, "manual_worker": 0.15},
        urban_share=0.60,
        prepaid_share=0.30,
        r=4.0,
        alpha=48.0,
        a=1.0,
        b=214.0,
        gg_p=4.0,
        gg_q=10.0,
        gg_gamma=_gg_gamma(60.0, 4.0, 10.0),
        data_mb=7_000,
        voice_min=260,
        sms=280,
        price_sensitivity=1.0,
        complaint_rate=0.05,
        inquiry_rate=0.08,
        satisfaction=0.0,
        churn_base_logit=-5.1,
        call_weight=1.0,
    ),
    Persona(
        name="student_prepaid",
        share=0.13,
        age_mean=20,
        age_sd=2,
        age_min=16,
        occupations={"student": 0.95, "employee": 0.05},
        urban_share=0.85,
        prepaid_share=0.92,
        r=4.0,
        alpha=32.0,
        a=1.2,
        b=136.0,
        gg_p=4.0,
        gg_q=10.0,
        gg_gamma=_gg_gamma(9.0, 4.0, 10.0),
        data_mb=16_000,
        voice_min=60,
        sms=450,
        price_sensitivity=1.2,
        complaint_rate=0.04,
        inquiry_rate=0.06,
        satisfaction=-0.1,
        churn_base_logit=-4.6,
        call_weight=1.4,
    ),
    Persona(
        name="rural_worker",
        share=0.18,
        age_mean=38,
        age_sd=9,
        age_min=18,
        occupations={"farmer": 0.4, "manual_worker": 0.45, "employee": 0.15},
        urban_share=0.10,
        prepaid_share=0.65,
        r=4.0,
        alpha=60.0,
        a=1.0,
        b=195.0,
        gg_p=4.0,
        gg_q=10.0,
        gg_gamma=_gg_gamma(18.0, 4.0, 10.0),
        data_mb=2_500,
        voice_min=380,
        sms=60,
        price_sensitivity=0.5,
        complaint_rate=0.04,
        inquiry_rate=0.05,
        satisfaction=-0.2,
        churn_base_logit=-5.1,
        call_weight=0.8,
    ),
)


@dataclass(frozen=True)
class ChurnEffects:
    """Known effects on the logit of the monthly churn hazard (added to the persona base).

    Every driver is observable in the data before the month it acts on.
    """

    network_badness: float = 0.45  # per unit of the latent network badness (z-score)
    recent_complaints: float = 0.30  # per complaint in the previous 3 months (capped at 3)
    open_unresolved: float = 0.45  # per never-resolved complaint opened earlier (capped at 2)
    price_sensitivity: float = 0.30  # per unit of price sensitivity
    short_tenure: float = 0.60  # tenure below one year at the start of the month
    prepaid: float = 0.40  # prepaid plan
    contagion: float = 2.5  # share of call contacts who churned in the previous 3 months
    satisfaction: float = -0.45  # per unit of the latent satisfaction
    in_contract: float = -1.0  # postpaid, months before the month the minimum term ends
    contract_end: float = 1.2  # postpaid, the month the minimum term ends and the next one
    recent_complaints_cap: int = 3
    open_unresolved_cap: int = 2
    contagion_months: int = 3
    contract_end_months: int = 2

    def to_json(self) -> dict[str, Any]:
        """The effects as plain JSON values."""
        return asdict(self)


@dataclass(frozen=True)
class WorldParams:
    """Operator-wide knobs of the simulation (not persona specific)."""

    pre_start_share: float = 0.5  # customers who signed up before the window starts
    max_tenure_years: float = 8.0
    birth_null: float = 0.03
    occupation_null: float = 0.05
    area_null: float = 0.01
    gender_null: float = 0.02
    refund_rate: float = 0.005
    zero_usage_month: float = 0.02
    survey_rate: float = 0.03  # per active customer and month
    csat_null: float = 0.10
    unresolved_complaint: float = 0.06
    unresolved_other: float = 0.03
    pending_recent: float = 0.25  # extra chance a ticket opened just before the end is open
    rated_interaction: float = 0.7  # share of closed interactions with a satisfaction score
    network_kpi_null: float = 0.005
    mean_degree: float = 4.0
    same_region_edges: float = 0.75
    reciprocal_edges: float = 0.5
    edge_use_a: float = 3.0  # Beta(a, b) share of months an edge is used (mean 0.3)
    edge_use_b: float = 7.0
    contract_terms: tuple[int, ...] = (12, 24)  # postpaid minimum terms, months
    contract_term_p: tuple[float, ...] = (0.4, 0.6)
    bill_noise: float = 0.08  # month-to-month spread (log scale) of a postpaid bill
    involuntary_share: float = 0.25  # postpaid departures that are cut-offs after unpaid bills
    unpaid_months: int = 2  # bills left unpaid before an involuntary cut-off
    device_plan_share: float = 0.0  # postpaid customers paying a device by instalments (0.3)
    device_instalment: tuple[float, float] = (15.0, 45.0)  # uniform monthly instalment range
    addon_rate: float = 0.0  # postpaid add-on purchases per month while billed (0.25)
    addon_mean: float = 10.0  # mean add-on amount (Gamma with shape 2)
    churn: ChurnEffects = field(default_factory=ChurnEffects)

    def to_json(self) -> dict[str, Any]:
        """The knobs as plain JSON values."""
        return asdict(self)
