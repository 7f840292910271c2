"""The churn stage on the generated operator, after the valuation stage as a run orders them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import polars as pl


def test_dormant_customers_are_lost_on_generated_data(
    generated_operator: Path, tmp_path: Path
) -> None:
    """Valuation then churn on the generated operator, as the pipeline runs them."""
    from churn.stage import churn_stage
    from crm_engine.config import load_config
    from crm_engine.io import load_tables
    from pipelines.runner import StageContext
    from valuation.run import valuation_stage

    cfg = load_config(None, {})
    tables = load_tables(generated_operator)
    ctx = StageContext(
        cfg=cfg, as_of=dt.date(2025, 1, 1), workdir=tmp_path, tracking=False, tables=tables
    )
    profile = ctx.profiles.get(ctx.as_of)
    values = valuation_stage(ctx, tables).outputs["values"]
    out = churn_stage(ctx, tables, profile, values)
    scores = out.outputs["churn_scores"].join(
        values.select("customer_id", "lifecycle_stage", "clv"), on="customer_id"
    )
    assert scores.height == profile.height
    dormant = scores.filter(pl.col("lifecycle_stage") == "dormant")
    others = scores.filter(pl.col("lifecycle_stage") != "dormant")
    assert dormant.height > 100
    assert set(dormant["churn_risk_band"]) == {"lost"}
    assert (dormant["churn_drivers"].list.len() == 0).all()
    assert (dormant["value_at_risk"] == 0.0).all()
    assert "lost" not in set(others["churn_risk_band"])
    assert dormant["retention_profit"].null_count() == dormant.height
    # churn_probability stays the model's; high = an offer pays (Verbraken's expected profit
    # at the default terms: accept 0.3, offer 10, contact 1), the rest by the first threshold.
    p, clv = others["churn_probability"].to_numpy(), others["clv"].to_numpy()
    gain = 0.3 * p * (clv - 10.0) - (1 - p) * 10.0 - 1.0
    np.testing.assert_allclose(others["retention_profit"].to_numpy(), gain, rtol=1e-12)
    expected = np.where(
        gain > 0, "high", np.where(p >= cfg.churn.risk_thresholds[0], "medium", "low")
    )
    assert others["churn_risk_band"].to_list() == expected.tolist()
    assert 0 < (gain > 0).sum() < others.height
    np.testing.assert_allclose(others["value_at_risk"], p * clv)
    assert dormant["churn_probability"].is_between(0, 1).all()
    # drivers_top_n (5,000) exceeds the 2,500 customers: every slot goes to the not-lost.
    assert (others["churn_drivers"].list.len() > 0).mean() > 0.95
    assert out.metrics["churn.n_lost"] == dormant.height
    # The report relates the two views: lifecycle stage x band, summing to the scored count.
    table = out.report.lifecycle_by_band
    assert list(table) == ["new", "active", "at_risk", "dormant"]
    assert sum(sum(row.values()) for row in table.values()) == scores.height
    assert table["dormant"] == {"low": 0, "medium": 0, "high": 0, "lost": dormant.height}
    assert sum(row["lost"] for row in table.values()) == dormant.height
    counts = scores.group_by("lifecycle_stage", "churn_risk_band").len()
    for row in counts.iter_rows(named=True):
        assert table[row["lifecycle_stage"]][row["churn_risk_band"]] == row["len"]
    json.dumps(out.report.to_dict()["lifecycle_by_band"])
