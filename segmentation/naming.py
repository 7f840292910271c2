"""Readable segment names from standardised centroid deviations."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from crm_engine.feature_labels import plain_label

#: Minimum |standardised deviation| for a trait to count as distinguishing.
TRAIT_THRESHOLD = 0.3
#: Traits used in a name before de-duplication adds more.
BASE_TRAITS = 3
FALLBACK_NAME = "Mainstream customers"

@dataclass(frozen=True)
class Phrase:
    """How one trait reads in a name: an adjective, optionally a noun, or a trailing clause."""

    adj: str | None = None
    noun: str | None = None
    suffix: str | None = None
    order: int = 50


@dataclass(frozen=True)
class _Group:
    """Features that describe one trait; ``sign`` flips features where high means low."""

    name: str
    members: Mapping[str, float]
    high: Phrase | None
    low: Phrase | None


_GROUPS: tuple[_Group, ...] = (
    _Group(
        "spend",
        {
            "revenue_365d": 1,
            "avg_monthly_spend": 1,
            "monetary_value": 1,
            "revenue_90d": 1,
            "revenue_30d": 1,
        },
        Phrase(adj="high-spend", order=0),
        Phrase(adj="low-spend", order=0),
    ),
    _Group(
        "frequency",
        {"frequency": 1},
        Phrase(adj="frequent-purchase", order=1),
        Phrase(adj="occasional-purchase", order=1),
    ),
    _Group(
        "tenure",
        {"tenure_days": 1},
        Phrase(adj="long-tenure", order=2),
        Phrase(adj="new", noun="newcomers", order=2),
    ),
    _Group(
        "data",
        {"data_mb_12m": 1, "data_mb_3m": 1},
        Phrase(adj="data-hungry", noun="data streamers", order=6),
        Phrase(adj="light-data", order=6),
    ),
    _Group(
        "voice",
        {"voice_min_12m": 1, "voice_min_3m": 1},
        Phrase(adj="voice", noun="callers", order=7),
        Phrase(adj="low-voice", order=7),
    ),
    _Group(
        "sms",
        {"sms_12m": 1, "sms_3m": 1},
        Phrase(adj="texting", noun="texters", order=8),
        None,
    ),
    _Group(
        "age",
        {"age": 1},
        Phrase(adj="senior", noun="seniors", order=9),
        Phrase(adj="young", noun="young adults", order=9),
    ),
    _Group(
        "network",
        {
            "dropped_call_rate_mean_3m": 1,
            "latency_ms_mean_3m": 1,
            "packet_loss_pct_mean_3m": 1,
            "avg_download_mbps_mean_3m": -1,
            "call_setup_success_rate_mean_3m": -1,
            "coverage_5g_share_mean_3m": -1,
        },
        Phrase(suffix="with poor coverage", order=20),
        Phrase(suffix="with fast network", order=20),
    ),
    _Group(
        "complaints",
        {"complaints_365d": 1, "complaints_90d": 1},
        Phrase(suffix="who complain often", order=21),
        None,
    ),
)

_CATEGORY_ORDER = {"plan_type": 3, "area_type": 4, "gender": 5, "occupation": 10, "region": 5}
_OCCUPATION_NOUNS = {
    "student": "students",
    "retired": "retirees",
    "business": "business users",
    "professional": "professionals",
    "self_employed": "self-employed",
    "family": "families",
    "unemployed": "job seekers",
    "manual": "manual workers",
    "manual_worker": "manual workers",
    "office": "office workers",
    "farmer": "farmers",
    "employee": "employees",
    "freelancer": "freelancers",
    "executive": "executives",
    "business_owner": "business owners",
    "homemaker": "homemakers",
}


def _category_phrase(column: str, value: str) -> Phrase | None:
    if value in ("unknown", "infrequent_sklearn"):
        return None
    words = value.replace("_", " ")
    order = _CATEGORY_ORDER.get(column, 12)
    if column == "occupation":
        return Phrase(adj=words, noun=_OCCUPATION_NOUNS.get(value), order=order)
    if column == "region":
        return Phrase(suffix=f"in {words}", order=19)
    return Phrase(adj=words, order=order)


@dataclass(frozen=True)
class Trait:
    """One distinguishing trait of a segment."""

    key: str
    z: float
    phrase: Phrase


def segment_traits(deviations: pd.Series, threshold: float = TRAIT_THRESHOLD) -> list[Trait]:
    """Distinguishing traits of one segment, strongest first.

    Parameters
    ----------
    deviations
        Standardised deviation of the segment from the population, indexed by numeric
        feature name or ``"column=value"`` for a category's share.
    threshold
        Minimum |deviation| for a trait to count.
    """
    traits: list[Trait] = []
    used: set[str] = set()
    for g in _GROUPS:
        zs = [sign * float(deviations[f]) for f, sign in g.members.items() if f in deviations]
        used.update(f for f in g.members if f in deviations)
        zs = [z for z in zs if np.isfinite(z)]
        if not zs:
            continue
        z = float(np.mean(zs))
        phrase = g.high if z > 0 else g.low
        if phrase is not None and abs(z) >= threshold:
            traits.append(Trait(g.name, z, phrase))
    best_value: dict[str, Trait] = {}
    for key, raw in deviations.items():
        key = str(key)
        if key in used or not np.isfinite(raw):
            continue
        z = float(raw)
        if "=" in key:
            column, value = key.split("=", 1)
            phrase = _category_phrase(column, value)
            # a category only distinguishes by being over-represented; one value per column
            if phrase is None or z < threshold:
                continue
            if column not in best_value or z > best_value[column].z:
                best_value[column] = Trait(column, z, phrase)
        elif abs(z) >= threshold:
            label = plain_label(key)
            phrase = Phrase(adj=f"high-{label}" if z > 0 else f"low-{label}", order=30)
            traits.append(Trait(key, z, phrase))
    traits.extend(best_value.values())
    traits.sort(key=lambda t: (-abs(t.z), t.key))
    return traits


def compose_name(traits: list[Trait]) -> str:
    """Compose a name from traits: adjectives, one noun, trailing clauses."""
    if not traits:
        return FALLBACK_NAME
    noun_trait = next((t for t in traits if t.phrase.noun), None)
    adjs = [t for t in traits if t is not noun_trait and t.phrase.adj is not None]
    suffixes = [t for t in traits if t.phrase.suffix is not None and t.phrase.adj is None]
    words = [t.phrase.adj for t in sorted(adjs, key=lambda t: t.phrase.order)]
    words.append(noun_trait.phrase.noun if noun_trait is not None else "customers")
    words.extend(t.phrase.suffix for t in sorted(suffixes, key=lambda t: t.phrase.order))
    name = " ".join(w for w in words if w)
    return name[0].upper() + name[1:]


def name_segments(
    deviations: pd.DataFrame,
    threshold: float = TRAIT_THRESHOLD,
    base_traits: int = BASE_TRAITS,
) -> list[str]:
    """Short readable names, unique within the run and never empty.

    Each segment starts with its ``base_traits`` strongest traits; names that collide get
    their next distinguishing trait until they differ, and a number as the last resort.

    Parameters
    ----------
    deviations
        One row per segment (in label order), columns as in :func:`segment_traits`.
    threshold
        Minimum |deviation| for a trait.
    base_traits
        Traits per name before de-duplication.

    Returns
    -------
    list of str
        One name per row of ``deviations``.
    """
    all_traits = [segment_traits(row, threshold) for _, row in deviations.iterrows()]
    n_used = [min(base_traits, len(t)) for t in all_traits]
    names = [compose_name(t[:n]) for t, n in zip(all_traits, n_used, strict=True)]
    while True:
        counts = Counter(names)
        progressed = False
        for i, name in enumerate(names):
            if counts[name] > 1 and n_used[i] < len(all_traits[i]):
                n_used[i] += 1
                progressed = True
        if not progressed:
            break
        names = [compose_name(t[:n]) for t, n in zip(all_traits, n_used, strict=True)]
    counts = Counter(names)
    seen: Counter[str] = Counter()
    out = []
    for name in names:
        if counts[name] > 1:
            seen[name] += 1
            out.append(f"{name} {seen[name]}")
        else:
            out.append(name)
    return out
