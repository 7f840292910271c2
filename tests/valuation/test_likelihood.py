"""The factored likelihoods equal lifetimes' own functions and their autograd gradients."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from autograd import value_and_grad

from valuation import import_lifetimes, simulate_bgnbd
from valuation.base import quiet_lifetimes
from valuation.likelihood import BetaGeoLikelihood, GammaGammaLikelihood


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    import_lifetimes()
    from lifetimes.datasets import load_cdnow_summary_data_with_monetary_value

    return load_cdnow_summary_data_with_monetary_value()


def _points(center: list[float], n: int = 6, seed: int = 0) -> list[np.ndarray]:
    """Log-parameter points around ``center``, some far from it (up to a factor of ~20)."""
    rng = np.random.default_rng(seed)
    return [np.log(center) + rng.normal(0.0, 1.0, len(center)) for _ in range(n)]


def _assert_same(fast: object, ref: object, points: list[np.ndarray]) -> None:
    for x in points:
        with quiet_lifetimes():
            want_value, want_grad = ref(x)  # type: ignore[operator]
        got_value, got_grad = fast(x)  # type: ignore[operator]
        assert got_value == pytest.approx(float(want_value), rel=1e-11, abs=1e-12), x
        np.testing.assert_allclose(got_grad, want_grad, rtol=1e-9, atol=1e-12, err_msg=str(x))


def test_bgnbd_equals_lifetimes_on_cdnow_weeks(cdnow: pd.DataFrame) -> None:
    # Fractional weeks (the np.unique coding), a penalizer and uneven weights.
    f = cdnow["frequency"].to_numpy(np.float64)
    rec, T = cdnow["recency"].to_numpy(np.float64), cdnow["T"].to_numpy(np.float64)
    w = np.random.default_rng(1).integers(1, 5, len(f)).astype(np.float64)
    nll = import_lifetimes().BetaGeoFitter._negative_log_likelihood
    ref = value_and_grad(nll)
    fast = BetaGeoLikelihood(f, rec, T, w, penalizer=0.01)
    _assert_same(
        fast, lambda x: ref(x, f.astype(np.int64), rec, T, w, 0.01), _points([0.24, 4.4, 0.79, 2.4])
    )


def test_bgnbd_equals_lifetimes_on_whole_days_with_time_scale() -> None:
    # Whole days (the direct coding) scaled to max T = 1, as the model fits them.
    sim = simulate_bgnbd(20_000, r=0.8, alpha=20.0, a=0.9, b=3.0, max_T=400, seed=4)
    f, rec, T = sim["frequency"], sim["recency"], sim["T"]
    assert (f == 0).mean() > 0.1 and (f > 0).mean() > 0.1  # both branches are exercised
    w = np.ones_like(f)
    scale = 1.0 / T.max()
    nll = import_lifetimes().BetaGeoFitter._negative_log_likelihood
    ref = value_and_grad(nll)
    fast = BetaGeoLikelihood(f, rec, T, w, 0.0, scale)
    _assert_same(
        fast,
        lambda x: ref(x, f.astype(np.int64), rec * scale, T * scale, w, 0.0),
        _points([0.8, 20.0 * scale, 0.9, 3.0], seed=2),
    )


def test_gamma_gamma_equals_lifetimes_on_cdnow(cdnow: pd.DataFrame) -> None:
    repeat = cdnow[cdnow["frequency"] > 0]
    f = repeat["frequency"].to_numpy(np.float64)
    m = repeat["monetary_value"].to_numpy(np.float64)
    w = np.random.default_rng(3).integers(1, 4, len(f)).astype(np.float64)
    nll = import_lifetimes().GammaGammaFitter._negative_log_likelihood
    ref = value_and_grad(nll)
    fast = GammaGammaLikelihood(f, m, w, penalizer=0.001)
    _assert_same(fast, lambda x: ref(x, f, m, w, 0.001), _points([6.25, 3.74, 15.44], seed=5))
