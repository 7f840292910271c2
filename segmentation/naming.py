"""Readable segment names from standardised centroid deviations."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from crm_engine.feature_labels import plain_label
from features import OTHER

#: Minimum |standardised deviation| for a trait to count as distinguishing.
TRAIT_THRESHOLD = 0.3
#: A name claims a category value (an occupation, urban, prepaid) only for more than this share
#: of the segment.
MAJORITY = 0.5
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
    if value in ("unknown", "infrequent_sklearn", OTHER):
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


def _value(row: pd.Series | None, key: str) -> float:
    """``row[key]`` as a float, NaN when absent."""
    if row is None or key not in row.index:
        return float("nan")
    return float(row[key])


def _median_holds(z: float, zm: float, threshold: float) -> bool:
    """Whether the segment's median deviation ``zm`` is beyond ``threshold`` on ``z``'s side."""
    return bool(np.isfinite(zm)) and float(np.sign(z)) * zm >= threshold


def segment_traits(
    deviations: pd.Series,
    threshold: float = TRAIT_THRESHOLD,
    medians: pd.Series | None = None,
    shares: pd.Series | None = None,
) -> list[Trait]:
    """Traits of one segment that are true of most of it, strongest first.

    Parameters
    ----------
    deviations
        Standardised deviation of the segment's mean from the population's, indexed by numeric
        feature name or ``"column=value"`` for a category's share: how strong a trait is.
    threshold
        Minimum |deviation| for a trait to count.
    medians
        Standardised deviation of the segment's median, same index: a numeric trait (a group's
        mean over its members) is claimed only when the median is beyond ``threshold`` on the
        same side, so that at least half the segment has it. None: the means stand in.
    shares
        Share of the segment holding each ``"column=value"``: a category value is claimed only
        when over-represented by ``threshold`` and held by more than :data:`MAJORITY` of the
        segment. None: no category is claimed.
    """
    medians = deviations if medians is None else medians
    traits: list[Trait] = []
    used: set[str] = set()
    for g in _GROUPS:
        present = [f for f in g.members if f in deviations and np.isfinite(deviations[f])]
        used.update(f for f in g.members if f in deviations)
        if not present:
            continue
        z = float(np.mean([g.members[f] * float(deviations[f]) for f in present]))
        zm = float(np.mean([g.members[f] * _value(medians, f) for f in present]))
        phrase = g.high if z > 0 else g.low
        if phrase is not None and abs(z) >= threshold and _median_holds(z, zm, threshold):
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
            if phrase is None or z < threshold or not _value(shares, key) > MAJORITY:
                continue
            if column not in best_value or z > best_value[column].z:
                best_value[column] = Trait(column, z, phrase)
        elif abs(z) >= threshold and _median_holds(z, _value(medians, key), threshold):
            label = plain_label(key)
            phrase = Phrase(adj=f"high-{label}" if z > 0 else f"low-{label}", order=30)
            traits.append(Trait(key, z, phrase))
    traits.extend(best_value.values())
    traits.sort(key=lambda t: (-abs(t.z), t.key))
    return traits


def _leading_trait(traits: list[Trait], lead: Trait | None = None) -> Trait | None:
    """The trait whose word opens :func:`compose_name` of ``traits`` (None: a generic word)."""
    if lead is not None and lead in traits and lead.phrase.adj is not None:
        return lead
    noun_trait = next((t for t in traits if t.phrase.noun), None)
    adjs = [t for t in traits if t is not noun_trait and t.phrase.adj is not None]
    if adjs:
        return min(adjs, key=lambda t: t.phrase.order)
    return noun_trait


def compose_name(traits: list[Trait], lead: Trait | None = None) -> str:
    """Compose a name from traits: adjectives, one noun, trailing clauses.

    ``lead`` (one of ``traits`` with an adjective) opens the name; otherwise adjectives follow
    their phrase order.
    """
    if not traits:
        return FALLBACK_NAME
    first = lead if lead is not None and lead in traits and lead.phrase.adj is not None else None
    noun_trait = next((t for t in traits if t.phrase.noun and t is not first), None)
    adjs = [
        t for t in traits if t is not noun_trait and t is not first and t.phrase.adj is not None
    ]
    suffixes = [t for t in traits if t.phrase.suffix is not None and t.phrase.adj is None]
    words = [first.phrase.adj] if first is not None else []
    words.extend(t.phrase.adj for t in sorted(adjs, key=lambda t: t.phrase.order))
    words.append(noun_trait.phrase.noun if noun_trait is not None else "customers")
    words.extend(t.phrase.suffix for t in sorted(suffixes, key=lambda t: t.phrase.order))
    name = " ".join(w for w in words if w)
    return name[0].upper() + name[1:]


def _stem(word: str) -> str:
    word = word.lower()
    return word[:-1] if word.endswith("s") else word


def first_word(name: str) -> str:
    """How a name begins, for telling names apart: its first word, lower case, singular
    (``"Seniors with poor coverage"`` and ``"Senior callers"`` begin alike)."""
    return _stem(name.split(" ", 1)[0])


def _trait_word(trait: Trait) -> str:
    return _stem((trait.phrase.adj or "").split(" ", 1)[0])


def _lead_options(
    i: int, members: list[int], all_traits: list[list[Trait]], taken: set[str]
) -> list[Trait]:
    """Traits that could lead segment ``i``'s name with a word no name has yet: those the
    other ``members`` do not share first, then plain adjectives before traits that make a
    better noun (``callers``), strongest first. None for a segment with the same traits as
    another one: nothing tells them apart."""
    phrases = [t.phrase for t in all_traits[i]]
    if any(j != i and [t.phrase for t in ts] == phrases for j, ts in enumerate(all_traits)):
        return []
    shared = {t.phrase for j in members if j != i for t in all_traits[j]}
    free = [t for t in all_traits[i] if t.phrase.adj and _trait_word(t) not in taken]
    return sorted(free, key=lambda t: (t.phrase in shared, t.phrase.noun is not None))


def _unique_first_words(
    all_traits: list[list[Trait]], chosen: list[list[Trait]], leads: list[Trait | None]
) -> None:
    """Give segments whose names begin alike another leading trait, in place.

    In each group of names that begin alike, the segment with the fewest other ways to begin
    (then the one whose leading trait is strongest) keeps the word; each other one is led by
    its strongest trait whose word is free, preferring traits the others do not share.
    """
    n = len(all_traits)

    def strength(i: int) -> float:
        t = _leading_trait(chosen[i], leads[i])
        return abs(t.z) if t is not None else 0.0

    for _ in range(4 * n):
        words = [first_word(compose_name(chosen[i], leads[i])) for i in range(n)]
        groups: dict[str, list[int]] = {}
        for i, w in enumerate(words):
            groups.setdefault(w, []).append(i)
        moved = False
        for members in (m for m in groups.values() if len(m) > 1):
            n_options = {i: len(_lead_options(i, members, all_traits, set(words))) for i in members}
            keeper = min(members, key=lambda i: (n_options[i], -strength(i), i))
            for i in members:
                opts = _lead_options(i, members, all_traits, set(words)) if i != keeper else []
                if opts:
                    leads[i] = opts[0]
                    if opts[0] not in chosen[i]:
                        chosen[i].append(opts[0])
                    words[i] = _trait_word(opts[0])
                    moved = True
        if not moved:
            return


def name_segments(
    deviations: pd.DataFrame,
    threshold: float = TRAIT_THRESHOLD,
    base_traits: int = BASE_TRAITS,
    *,
    medians: pd.DataFrame | None = None,
    shares: pd.DataFrame | None = None,
) -> list[str]:
    """Short readable names, true of most of their segment, unique within the run.

    Each segment starts with its ``base_traits`` strongest traits (:func:`segment_traits`).
    No two names begin with the same word (:func:`first_word`): a segment whose name begins
    like another's is led by another of its traits. Names still equal get their next trait
    until they differ, and a number as the last resort (segments nothing tells apart).

    Parameters
    ----------
    deviations
        One row per segment (in label order), columns as in :func:`segment_traits`.
    threshold
        Minimum |deviation| for a trait.
    base_traits
        Traits per name before de-duplication.
    medians, shares
        Per segment (same rows), the standardised median deviation of each numeric feature
        and the share of each ``"column=value"``: see :func:`segment_traits`.

    Returns
    -------
    list of str
        One name per row of ``deviations``.
    """

    def row(frame: pd.DataFrame | None, i: int) -> pd.Series | None:
        return None if frame is None else frame.iloc[i]

    all_traits = [
        segment_traits(deviations.iloc[i], threshold, row(medians, i), row(shares, i))
        for i in range(len(deviations))
    ]
    chosen = [list(t[:base_traits]) for t in all_traits]
    leads: list[Trait | None] = [None] * len(chosen)
    _unique_first_words(all_traits, chosen, leads)
    names = [compose_name(c, lead) for c, lead in zip(chosen, leads, strict=True)]
    while True:
        counts = Counter(names)
        progressed = False
        for i, name in enumerate(names):
            if counts[name] < 2:
                continue
            # the next trait that keeps the name's first word
            for t in all_traits[i]:
                longer = compose_name([*chosen[i], t], leads[i])
                if t not in chosen[i] and first_word(longer) == first_word(name):
                    chosen[i].append(t)
                    progressed = True
                    break
        if not progressed:
            break
        names = [compose_name(c, lead) for c, lead in zip(chosen, leads, strict=True)]
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
