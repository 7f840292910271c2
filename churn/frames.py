"""Point-in-time training frames: profiles at earlier cuts joined with their forward labels."""

from __future__ import annotations

import datetime as dt

import polars as pl

from crm_engine.config import FeaturesConfig
from crm_engine.io import DataError
from features import CustomerSample, ProfileAt, build_labels, build_profile, churn_label, restrict

__all__ = ["build_training_frames", "labelled_profile", "training_cuts", "with_extras"]


def training_cuts(as_of: dt.date, horizon_days: int) -> tuple[dt.date, dt.date]:
    """``(training cut, validation cut)`` = ``(as_of - 2h, as_of - h)``.

    Labels of the validation cut cover ``[as_of - h, as_of)`` and those of the training cut
    ``[as_of - 2h, as_of - h)``: both are known at ``as_of``, and the validation customers are
    a later snapshot, never a random split of the training one.
    """
    h = dt.timedelta(days=horizon_days)
    return as_of - 2 * h, as_of - h


def with_extras(
    profile: pl.LazyFrame, tables: dict[str, pl.LazyFrame], extra_features: list[str]
) -> pl.LazyFrame:
    """Join configured customers-table attributes onto the profile (the profile drops them).

    Raises
    ------
    DataError
        An extra feature that is neither a profile column nor a column of ``customers``.
    """
    if not extra_features:
        return profile
    present = profile.collect_schema()
    wanted = [c for c in extra_features if c not in present]
    if not wanted:
        return profile
    available = tables["customers"].collect_schema()
    missing = [c for c in wanted if c not in available]
    if missing:
        raise DataError(
            f"churn.extra_features {missing} are neither profile columns nor columns of the "
            f"customers table (its columns: {list(available)})"
        )
    return profile.join(
        tables["customers"].select("customer_id", *wanted),
        on="customer_id",
        how="left",
        maintain_order="left",
    )


def labelled_profile(
    tables: dict[str, pl.LazyFrame],
    cut: dt.date,
    features_cfg: FeaturesConfig,
    extra_features: list[str],
    horizon_days: int,
    profile: pl.LazyFrame | None = None,
    sample: CustomerSample | None = None,
) -> pl.LazyFrame:
    """Profile at ``cut`` (plus extra features) joined with the labels looking ``h`` ahead.

    ``profile`` is the profile at ``cut`` (of ``sample``'s customers) when the caller already
    has it (built otherwise). ``sample``: only these customers (None: everyone).
    """
    base = profile if profile is not None else build_profile(tables, cut, features_cfg, sample)
    keyed = restrict(tables, sample)
    labels = build_labels(keyed, cut, horizon_days).select(
        "customer_id", churn_label(horizon_days), "loyalty_class"
    )
    return with_extras(base, keyed, extra_features).join(
        labels, on="customer_id", how="left", maintain_order="left"
    )


def build_training_frames(
    tables: dict[str, pl.LazyFrame],
    as_of: dt.date,
    features_cfg: FeaturesConfig,
    extra_features: list[str],
    horizon_days: int,
    profile_at: ProfileAt | None = None,
    sample: CustomerSample | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Training and validation frames at ``as_of - 2h`` and ``as_of - h``, collected together.

    ``profile_at`` supplies already-built profiles by cut (the pipeline's per-run cache);
    ``sample`` bounds both frames to a hashed share of the customers (the same customers at
    both cuts; None: everyone).

    Raises
    ------
    DataError
        When a cut has no customers (the data must cover two horizons before ``as_of``).
    """
    train_cut, valid_cut = training_cuts(as_of, horizon_days)

    def at(cut: dt.date) -> pl.LazyFrame | None:
        return profile_at(cut, sample).lazy() if profile_at is not None else None

    train, valid = pl.collect_all(
        [
            labelled_profile(
                tables, cut, features_cfg, extra_features, horizon_days, at(cut), sample
            )
            for cut in (train_cut, valid_cut)
        ]
    )
    for name, frame, cut in (("training", train, train_cut), ("validation", valid, valid_cut)):
        if frame.height == 0:
            raise DataError(
                f"no customers at the {name} cut {cut} (as_of={as_of}, horizon="
                f"{horizon_days}d): the data must cover two horizons before as_of"
            )
    return train, valid
