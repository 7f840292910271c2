"""A likelihood whose optimum lies at infinity: the fit accepts the ridge instead of failing.

``data/ridge_triples.parquet`` holds the distinct (frequency, recency, T) triples with counts
of the generated 100,000-customer operator (seed 7) at as_of 2024-01-01: synthetic, no
personal data. Unpenalised Modified BG/NBD drives its dropout Beta towards a point mass (a and
b growing together); BFGS stopped there on "precision loss" with a gradient of 7e-5 and the
run failed with "did not converge", although no step could improve the likelihood.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from valuation.bgnbd import ModifiedBetaGeoModel

TRIPLES = Path(__file__).parent / "data" / "ridge_triples.parquet"


def test_a_ridge_optimum_is_accepted_and_beats_the_penalised_fit() -> None:
    t = pl.read_parquet(TRIPLES)
    X, w = t.select("frequency", "recency", "T"), t["customers"].to_numpy().astype(np.float64)
    ridge = ModifiedBetaGeoModel().fit(X, sample_weight=w)
    penalised = ModifiedBetaGeoModel(penalizer=1e-4).fit(X, sample_weight=w)
    # the ridge: a and b large together, a finite mean dropout
    assert ridge.params_["a"] > 1_000 and ridge.params_["b"] > 100 * ridge.params_["a"]
    assert ridge.population_rates()["dropout"] == pytest.approx(0.0049, rel=0.05)
    # and it is the better fit, by far, on the same customers
    assert ridge.log_likelihood_ > penalised.log_likelihood_ + 100
    assert ridge.params_["r"] == pytest.approx(penalised.params_["r"], rel=0.01)
    p = ridge.p_alive(X.head(500))
    assert np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()
