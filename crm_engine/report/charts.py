"""Charts as inline PNG images, drawn without touching matplotlib's global state."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from crm_engine.parts import group_sums
from crm_engine.report.formatting import compact, label_of
from crm_engine.report.views import LOYALTY_ORDER, Scores, as_parts, histogram_counts, ordered


def _fig_to_img(fig: Any, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def png_file_to_img(path: Path, alt: str) -> str:
    """A PNG file as an inline ``<img>``."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def figure(img: str, caption: str) -> str:
    """An image in a ``<figure>`` with its caption."""
    return f"<figure>{img}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _new_figure(width: float = 6.2, height: float = 3.4) -> Any:
    """A matplotlib figure that touches no global state (no pyplot, no backend switch)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def heatmap(
    scores: Scores,
    rows: str,
    cols: str,
    title: str,
    orders: Mapping[str, Sequence[str]],
) -> str | None:
    """Customer counts of ``rows`` x ``cols`` as a heatmap (counted where the scores lie);
    None when either is empty.

    ``orders`` gives the order of a dimension's values (:func:`views.dimension_orders`).
    """
    cells = group_sums(as_parts(scores), [pl.col(rows), pl.col(cols)])
    if cells.get_column(rows).null_count() == cells.height or (
        cells.get_column(cols).null_count() == cells.height
    ):
        return None
    counts = cells.pivot(on=cols, index=rows, values="n").fill_null(0)
    row_names = ordered([str(v) for v in counts[rows]], orders.get(rows, ()))
    counts = (
        counts.with_columns(pl.col(rows).cast(pl.String))
        .join(pl.DataFrame({rows: row_names}), on=rows, how="right")
        .select(rows, pl.exclude(rows))
    )
    col_names = ordered([c for c in counts.columns if c != rows], orders.get(cols, ()))
    mat = counts.select(col_names).fill_null(0).to_numpy().astype(float)
    lo, hi = float(mat.min()), float(mat.max())
    fig = _new_figure(6.2, max(3.0, 0.36 * counts.height + 1.2))
    ax = fig.subplots()
    im = ax.imshow(mat, cmap="Blues", aspect="auto")
    ax.set_xticks(range(len(col_names)), col_names, rotation=30, ha="right")
    ax.set_yticks(range(counts.height), [str(x) for x in counts[rows]])
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            ax.text(
                j,
                i,
                f"{int(mat[i, j]):,}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if mat[i, j] > lo + 0.6 * (hi - lo) else "black",
            )
    ax.set_xlabel(label_of(cols))
    ax.set_ylabel(label_of(rows))
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="customers")
    return _fig_to_img(fig, title)


def bar_chart(
    labels: list[str], values: list[float], title: str, xlabel: str, ylabel: str, color: str
) -> str:
    """Horizontal bars of ``values``, the first label on top."""
    fig = _new_figure(6.2, max(2.8, 0.34 * len(labels) + 1.4))
    ax = fig.subplots()
    ax.barh(labels[::-1], values[::-1], color=color)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_formatter(_thousands())
    return _fig_to_img(fig, title)


def _thousands() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda x, _pos: compact(x))


def histogram(scores: Scores, column: str, title: str, xlabel: str, log: bool = False) -> str:
    """Histogram of the finite values of ``column`` (50 bins over their range, counted where
    the scores lie: :func:`views.histogram_counts`), optionally on a log10 axis."""
    fig = _new_figure()
    ax = fig.subplots()
    value = pl.col(column).cast(pl.Float64)
    if log:
        value = value.clip(lower_bound=1e-2).log10()
        xlabel = f"{xlabel}, log10 scale"
    edges, counts = histogram_counts(as_parts(scores), value, 50)
    if counts.size:
        ax.hist(edges[:-1], bins=edges, weights=counts, color="#4c78a8")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("customers")
    if log and counts.size:
        low, high = float(edges[0]), float(edges[-1])
        ticks = [t for t in ax.get_xticks() if low - 1 <= t <= high + 1]
        ax.set_xticks(ticks, [f"{10**t:,.0f}" if t >= 0 else f"{10**t:.2g}" for t in ticks])
    return _fig_to_img(fig, title)


def funnel_chart(funnel: pl.DataFrame, cur: str) -> str:
    """The lifecycle funnel: customers, share and CLV per stage."""
    title = "Lifecycle funnel"
    stages = [label_of(s) for s in funnel["lifecycle_stage"]]
    n = funnel["customers"].to_list()
    fig = _new_figure(6.2, max(2.8, 0.5 * len(stages) + 1.2))
    ax = fig.subplots()
    y = np.arange(len(stages))[::-1]
    ax.barh(y, n, color="#72b7b2")
    ax.set_yticks(y, stages)
    top = max(n) if n else 1
    for yi, count, share, clv in zip(
        y, n, funnel["share"], funnel["clv"].fill_null(0.0), strict=True
    ):
        ax.text(
            count + top * 0.01,
            yi,
            f"{count:,} ({share:.0%}) · CLV {compact(clv)}",
            va="center",
            fontsize=8,
        )
    ax.set_xlim(0, top * 1.55)
    ax.set_title(title)
    ax.set_xlabel("customers")
    ax.set_ylabel("lifecycle stage")
    ax.xaxis.set_major_formatter(_thousands())
    return _fig_to_img(fig, f"{title} (CLV in {cur})")


LOYALTY_COLOURS = ("#54a24b", "#bab0ac", "#e45756")
"""The loyalty classes' colours, most loyal first (the order of ``LOYALTY_ORDER``)."""
OTHER_COLOUR = "#79706e"
"""A class declared beyond the colours above."""


def loyalty_chart(split: pl.DataFrame) -> str:
    """Stacked promoter / passive / detractor shares per group."""
    title = "Predicted loyalty, overall and by segment"
    labels = split["group"].to_list()
    fig = _new_figure(6.6, max(2.8, 0.38 * len(labels) + 1.6))
    ax = fig.subplots()
    y = np.arange(len(labels))[::-1]
    left = np.zeros(len(labels))
    for i, c in enumerate(LOYALTY_ORDER):
        share = split[c].fill_null(0.0).to_numpy() * 100
        color = LOYALTY_COLOURS[i] if i < len(LOYALTY_COLOURS) else OTHER_COLOUR
        ax.barh(y, share, left=left, color=color, label=f"{c}s")
        for yi, x0, w in zip(y, left, share, strict=True):
            if w >= 8:
                ax.text(x0 + w / 2, yi, f"{w:.0f}%", ha="center", va="center", fontsize=7)
        left += share
    ax.set_yticks(y, labels)
    ax.set_xlim(0, 100)
    ax.set_title(title)
    ax.set_xlabel("share of customers (%)")
    ax.set_ylabel("segment")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, frameon=False)
    return _fig_to_img(fig, title)


def predicted_vs_realised_chart(
    rows: Sequence[Mapping[str, Any]], key: str, title: str, xlabel: str
) -> str:
    """Bars of the mean predicted probability beside the realised rate, one pair per ``key``
    value (a decile or a risk band), in the order given."""
    labels = [str(r[key]) for r in rows]
    predicted = np.array([float(r["mean_predicted"]) for r in rows]) * 100
    realised = np.array([float(r["realised_rate"]) for r in rows]) * 100
    fig = _new_figure(6.2, 3.4)
    ax = fig.subplots()
    x = np.arange(len(labels))
    ax.bar(x - 0.2, predicted, width=0.4, color="#4c78a8", label="predicted")
    ax.bar(x + 0.2, realised, width=0.4, color="#f58518", label="realised")
    ax.set_xticks(x, labels)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("churn (%)")
    ax.legend(frameon=False)
    return _fig_to_img(fig, title)


def psi_chart(
    psi: Mapping[str, float],
    warn: float,
    alert: float,
    top: int = 15,
    flagged: Mapping[str, str] | None = None,
) -> str:
    """Horizontal bars of the ``top`` largest PSIs (largest on top), coloured by threshold, with
    the warning and alert thresholds drawn as vertical lines. ``flagged`` columns (an alert of
    their own, e.g. within one region) are always shown, red, their label followed by the text
    given."""
    flagged = flagged or {}
    largest = sorted(psi.items(), key=lambda kv: -kv[1])[:top]
    shown = {k for k, _ in largest}
    largest += sorted(
        ((k, psi[k]) for k in flagged if k in psi and k not in shown), key=lambda kv: -kv[1]
    )
    labels = [f"{k} ({flagged[k]})" if k in flagged else k for k, _ in largest][::-1]
    values = [v for _, v in largest][::-1]
    colors = [
        "#e45756" if v >= alert or k in flagged else "#f58518" if v >= warn else "#4c78a8"
        for k, v in largest[::-1]
    ]
    fig = _new_figure(6.2, max(2.8, 0.3 * len(labels) + 1.4))
    ax = fig.subplots()
    ax.barh(labels, values, color=colors)
    ax.axvline(warn, color="#f58518", linestyle="--", linewidth=1, label=f"warning {warn:g}")
    ax.axvline(alert, color="#e45756", linestyle="--", linewidth=1, label=f"alert {alert:g}")
    ax.set_xlim(0, max([alert * 1.2, *values]) * 1.05)
    title = "What moved since the last run (PSI)"
    ax.set_title(title)
    ax.set_xlabel("population stability index against the last run's bins")
    ax.tick_params(axis="y", labelsize=8)
    ax.legend(frameon=False, loc="lower right")
    return _fig_to_img(fig, title)
