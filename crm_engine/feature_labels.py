"""Readable labels, units and value formats of the profile features, and their alias groups.

One place for the words a person reads: segment names and profiles, churn reasons and the
report all take a feature's label and the way its value is written from here. Windowed
columns follow the configured windows (``revenue_<w>d``, ``<kpi>_mean_<n>m``,
``complaints_<w>d``...), so a profile built with other windows is labelled too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "FEATURE_ALIASES",
    "FeatureLabel",
    "Unit",
    "alias_group",
    "feature_label",
    "format_value",
    "plain_label",
]

Unit = Literal[
    "percent",
    "percent_points",
    "days",
    "years",
    "hours",
    "count",
    "amount",
    "mb_month",
    "minutes_month",
    "sms_month",
    "minutes",
    "mbps",
    "ms",
    "score",
    "index",
    "flag",
    "category",
]
"""How a feature's value is written.

``percent``: a fraction (0-1) written as a percentage; ``percent_points``: already a
percentage; ``days``, ``years``, ``hours``: durations; ``count``: a whole number;
``amount``: money in the operator's currency (no symbol); ``mb_month``, ``minutes_month``,
``sms_month``: monthly usage means; ``minutes``: a total of call minutes; ``mbps``, ``ms``:
network speed and delay; ``score``: a survey or model score; ``index``: a signed ratio such as
a trend in [-1, 1]; ``flag``: yes / no; ``category``: a text value.
"""


@dataclass(frozen=True)
class FeatureLabel:
    """How one feature reads.

    Attributes
    ----------
    label
        Plain words, lower case (``"5G coverage"``, ``"tenure"``, ``"plan"``).
    unit
        How its value is written (:data:`Unit`).
    decimals
        Decimals shown (after scaling a fraction to a percentage).
    """

    label: str
    unit: Unit
    decimals: int = 0

    @property
    def is_categorical(self) -> bool:
        """Whether the value is a category or a yes/no flag rather than a number."""
        return self.unit in ("category", "flag")


_FIXED: dict[str, FeatureLabel] = {
    # who
    "age": FeatureLabel("age", "years"),
    "age_band": FeatureLabel("age band", "category"),
    "gender": FeatureLabel("gender", "category"),
    "occupation": FeatureLabel("occupation", "category"),
    "region": FeatureLabel("region", "category"),
    "area_type": FeatureLabel("area", "category"),
    "plan_type": FeatureLabel("plan", "category"),
    "spend_level": FeatureLabel("spend level", "category"),
    "tenure_days": FeatureLabel("tenure", "days"),
    "contract_days_left": FeatureLabel("time to contract end", "days"),
    "contract_months_left": FeatureLabel("months to contract end", "count"),
    # spend
    "avg_monthly_spend": FeatureLabel("monthly spend", "amount", 2),
    "spend_trend": FeatureLabel("spend trend", "index", 2),
    "refund_count": FeatureLabel("refunds", "count"),
    "refund_amount": FeatureLabel("refunded amount", "amount", 2),
    "days_since_last_payment": FeatureLabel("time since last payment", "days"),
    # BTYD summary (lifetimes' definitions)
    "has_purchase": FeatureLabel("has purchased", "flag"),
    "frequency": FeatureLabel("repeat purchase days", "count"),
    "recency": FeatureLabel("first to last purchase", "days"),
    "T": FeatureLabel("time since first purchase", "days"),
    "monetary_value": FeatureLabel("average purchase", "amount", 2),
    # usage (monthly means)
    "data_mb_3m": FeatureLabel("recent data use", "mb_month"),
    "data_mb_12m": FeatureLabel("data use", "mb_month"),
    "voice_min_3m": FeatureLabel("recent voice use", "minutes_month"),
    "voice_min_12m": FeatureLabel("voice use", "minutes_month"),
    "sms_3m": FeatureLabel("recent texting", "sms_month"),
    "sms_12m": FeatureLabel("texting", "sms_month"),
    "data_trend": FeatureLabel("data use trend", "index", 2),
    "voice_trend": FeatureLabel("voice use trend", "index", 2),
    "zero_usage_share_12m": FeatureLabel("months without usage", "percent"),
    # service
    "open_tickets": FeatureLabel("open tickets", "count"),
    "resolution_hours_mean": FeatureLabel("average resolution time", "hours"),
    "resolution_hours_max": FeatureLabel("longest resolution time", "hours"),
    "days_since_last_complaint": FeatureLabel("time since last complaint", "days"),
    "interaction_satisfaction_mean": FeatureLabel("service satisfaction", "score", 1),
    "complaint_rate_730d": FeatureLabel("complaints a month", "count", 2),
    # surveys
    "last_nps": FeatureLabel("last NPS", "score"),
    "last_csat": FeatureLabel("last CSAT", "score"),
    "days_since_survey": FeatureLabel("time since last survey", "days"),
    "nps_mean": FeatureLabel("average NPS", "score", 1),
    # influence
    "n_contacts": FeatureLabel("contacts", "count"),
    "call_minutes_12m": FeatureLabel("12-month call minutes", "minutes"),
    "outside_region_share": FeatureLabel("contacts outside the region", "percent"),
    "influence_score": FeatureLabel("influence", "score", 2),
    "network_experience_score": FeatureLabel("network experience", "score", 2),
}

#: Network KPI -> (label, unit, decimals); the mean and the worst month of the window.
_NETWORK: dict[str, tuple[str, Unit, int]] = {
    "dropped_call_rate": ("dropped calls", "percent", 1),
    "call_setup_success_rate": ("call setup success", "percent", 1),
    "avg_download_mbps": ("download speed", "mbps", 0),
    "latency_ms": ("latency", "ms", 0),
    "packet_loss_pct": ("packet loss", "percent_points", 2),
    "coverage_5g_share": ("5G coverage", "percent", 0),
}
_NETWORK_RE = re.compile(rf"^({'|'.join(_NETWORK)})_(mean|worst)_(\d+)m$")

_SPEND_SHARE_WORDS = {
    "topup": "top-up",
    "bill": "bill",
    "addon": "add-on",
    "device": "device",
    "other": "other",
}


def _window(days: int) -> str:
    """``365`` -> ``"12-month"``, ``90`` -> ``"90-day"``."""
    return f"{12 * days // 365}-month" if days % 365 == 0 else f"{days}-day"


def _patterned(feature: str) -> FeatureLabel | None:
    if m := re.fullmatch(r"revenue_(\d+)d", feature):
        return FeatureLabel(f"{_window(int(m[1]))} spend", "amount", 2)
    if m := re.fullmatch(r"share_(\w+)", feature):
        words = _SPEND_SHARE_WORDS.get(m[1], m[1].replace("_", " "))
        return FeatureLabel(f"{words} share of spend", "percent")
    if m := re.fullmatch(r"(complaints|inquiries)_(\d+)d", feature):
        return FeatureLabel(f"{_window(int(m[2]))} {m[1]}", "count")
    if m := re.fullmatch(r"complaints_(\d+)d_(\w+)", feature):
        return FeatureLabel(f"{_window(int(m[1]))} {m[2].replace('_', ' ')} complaints", "count")
    if m := _NETWORK_RE.fullmatch(feature):
        label, unit, decimals = _NETWORK[m[1]]
        return FeatureLabel(label if m[2] == "mean" else f"{label} (worst month)", unit, decimals)
    if m := re.fullmatch(r"first_year_share_(\d+)d", feature):
        return FeatureLabel(f"next {_window(int(m[1]))} in the first year", "percent")
    if m := re.fullmatch(r"churned_contacts_share_(\d+)d", feature):
        return FeatureLabel(f"contacts who left in {m[1]} days", "percent")
    return None


def feature_label(feature: str) -> FeatureLabel | None:
    """The label and unit of a profile feature, or None for a column not declared here.

    Parameters
    ----------
    feature
        Profile column name (``"coverage_5g_share_mean_3m"``, ``"revenue_365d"``, ``"T"``).

    Examples
    --------
    >>> feature_label("coverage_5g_share_mean_3m")
    FeatureLabel(label='5G coverage', unit='percent', decimals=0)
    """
    return _FIXED.get(feature) or _patterned(feature)


def plain_label(feature: str) -> str:
    """Plain words for a feature name (an undeclared one reads as its name with spaces)."""
    spec = feature_label(feature)
    return spec.label if spec is not None else feature.replace("_", " ")


def _plural(n: float, one: str, many: str) -> str:
    return one if n == 1 else many


def _number(x: float, decimals: int) -> str:
    return f"{x:,.{decimals}f}"


_FORMATS: dict[Unit, Callable[[float, int], str]] = {
    "percent": lambda x, d: f"{_number(100.0 * x, d)}%",
    "percent_points": lambda x, d: f"{_number(x, d)}%",
    "days": lambda x, d: f"{_number(x, d)} {_plural(round(x, d), 'day', 'days')}",
    "years": lambda x, d: f"{_number(x, d)} {_plural(round(x, d), 'year', 'years')}",
    "hours": lambda x, d: f"{_number(x, d)} {_plural(round(x, d), 'hour', 'hours')}",
    "count": lambda x, d: _number(x, d),
    "amount": lambda x, d: _number(x, d),
    "mb_month": lambda x, d: (
        f"{_number(x / 1024.0, 1)} GB a month" if x >= 1024 else f"{_number(x, d)} MB a month"
    ),
    "minutes_month": lambda x, d: f"{_number(x, d)} min a month",
    "sms_month": lambda x, d: f"{_number(x, d)} SMS a month",
    "minutes": lambda x, d: f"{_number(x, d)} min",
    "mbps": lambda x, d: f"{_number(x, d)} Mbps",
    "ms": lambda x, d: f"{_number(x, d)} ms",
    "score": lambda x, d: _number(x, d),
    "index": lambda x, d: f"{x:+.{d}f}",
}


def format_value(feature: str, value: object) -> str:
    """A feature's value written with its unit: ``"12%"``, ``"730 days"``, ``"1,256.05"``.

    Missing values (None, NaN) read ``"unknown"``; flags read ``"yes"`` / ``"no"``; text
    values read with spaces for underscores. An undeclared numeric feature is written with
    up to two decimals and no unit.

    Parameters
    ----------
    feature
        Profile column name.
    value
        The customer's value (number, bool, text or None).
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unknown"
    spec = feature_label(feature)
    if isinstance(value, bool) or (spec is not None and spec.unit == "flag"):
        return "yes" if bool(value) else "no"
    if isinstance(value, str):
        return value.replace("_", " ")
    x = float(value)  # type: ignore[arg-type]
    if spec is None or spec.unit == "category":
        return f"{x:,.2f}".rstrip("0").rstrip(".") if not x.is_integer() else f"{x:,.0f}"
    return _FORMATS[spec.unit](x, spec.decimals)


FEATURE_ALIASES: tuple[tuple[str, re.Pattern[str]], ...] = (
    # tenure since signup and lifetimes' T (first purchase to the cut) measure one thing.
    ("tenure", re.compile(r"^(tenure_days|T)$")),
    # the minimum term's end, in days and in calendar months.
    ("contract end", re.compile(r"^contract_(days|months)_left$")),
    # usage means over 3 and 12 months (r > 0.98 on the synthetic operator).
    ("data use", re.compile(r"^data_mb_\d+m$")),
    ("voice use", re.compile(r"^voice_min_\d+m$")),
    ("texting", re.compile(r"^sms_\d+m$")),
    # the window's mean and worst month of 5G coverage (r = 0.986).
    ("5G coverage", re.compile(r"^coverage_5g_share_(mean|worst)_\d+m$")),
    # the last NPS and the mean of every answer (most customers answered once: r = 0.989).
    ("NPS", re.compile(r"^(last_nps|nps_mean)$")),
    # PageRank on the undirected, minute-weighted call graph follows weighted degree (r = 0.983).
    ("call volume", re.compile(r"^(call_minutes_12m|influence_score)$")),
)
"""Groups of features that say the same thing: only the strongest of a group is a churn driver.

Declared as (group name, pattern of member names) so that every window of a feature belongs to
its group. Found on the generated operator (``crm-engine generate``, 5,000 customers): every
pair of model features with Pearson r > 0.98, plus ``tenure_days`` / ``T``.
"""


def alias_group(feature: str) -> str | None:
    """The :data:`FEATURE_ALIASES` group a feature belongs to, or None."""
    return next((name for name, pattern in FEATURE_ALIASES if pattern.match(feature)), None)
