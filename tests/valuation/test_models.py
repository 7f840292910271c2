"""Purchase and spend models against published CDNOW results, compression, pickling, errors."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest

from valuation import (
    BetaGeoModel,
    GammaGammaModel,
    ModifiedBetaGeoModel,
    ParetoNBDModel,
    ValuationError,
    import_lifetimes,
    simulate_bgnbd,
)


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    import_lifetimes()
    from lifetimes.datasets import load_cdnow_summary

    return load_cdnow_summary(index_col=[0])


@pytest.fixture(scope="module")
def cdnow_monetary() -> pd.DataFrame:
    import_lifetimes()
    from lifetimes.datasets import load_cdnow_summary_data_with_monetary_value

    return load_cdnow_summary_data_with_monetary_value()


def _close(got: dict[str, float], want: dict[str, float], rel: float) -> None:
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=rel), f"{k}: got {got[k]}, published {v}"


def test_bgnbd_matches_fader_hardie_lee_on_cdnow(cdnow: pd.DataFrame) -> None:
    model = BetaGeoModel().fit(cdnow)
    _close(model.params_, {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}, rel=0.01)
    # Published log-likelihood of the BG/NBD on CDNOW (Fader, Hardie and Lee 2005): -9582.4.
    assert model.log_likelihood_ == pytest.approx(-9582.4, abs=0.5)
    assert model.n_customers_ == len(cdnow) == 2357
    assert model.n_triples_ < model.n_customers_


def test_pareto_nbd_matches_published_on_cdnow(cdnow: pd.DataFrame) -> None:
    model = ParetoNBDModel().fit(cdnow)
    _close(model.params_, {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}, rel=0.01)
    assert model.log_likelihood_ == pytest.approx(-9595.0, abs=0.5)


def test_gamma_gamma_matches_published_on_cdnow(cdnow_monetary: pd.DataFrame) -> None:
    repeaters = cdnow_monetary[cdnow_monetary["frequency"] > 0]
    model = GammaGammaModel().fit(repeaters)
    _close(model.params_, {"p": 6.25, "q": 3.74, "v": 15.44}, rel=0.01)
    # Fitting on everyone gives the same answer: the model filters to its own support.
    everyone = GammaGammaModel().fit(cdnow_monetary)
    _close(everyone.params_, model.params_, rel=1e-9)
    assert everyone.n_excluded_ == len(cdnow_monetary) - len(repeaters)
    p, q, v = (model.params_[k] for k in "pqv")
    assert model.population_mean_ == pytest.approx(p * v / (q - 1))
    assert -1 < model.frequency_monetary_corr_ < 1
    assert model.frequency_monetary_corr_ == pytest.approx(
        np.corrcoef(repeaters["frequency"], repeaters["monetary_value"])[0, 1], rel=1e-9
    )


def test_gamma_gamma_spend_no_history_gets_population_mean(
    cdnow_monetary: pd.DataFrame,
) -> None:
    model = GammaGammaModel().fit(cdnow_monetary)
    X = pl.DataFrame({"frequency": [0, 3, 2, 1], "monetary_value": [0.0, 20.0, -5.0, 1e-9]})
    value = model.expected_avg_value(X)
    assert value[0] == pytest.approx(model.population_mean_)
    assert value[2] == pytest.approx(model.population_mean_)  # negative mean: no support
    assert 20.0 < value[1] < model.population_mean_  # shrunk towards the population mean
    assert (value >= 0).all()


def test_modified_bgnbd_gives_p_alive_below_one_without_repeat(cdnow: pd.DataFrame) -> None:
    bg = BetaGeoModel().fit(cdnow)
    mbg = ModifiedBetaGeoModel().fit(cdnow)
    X = pl.DataFrame({"frequency": [0], "recency": [0.0], "T": [38.0]})
    assert bg.p_alive(X)[0] == 1.0
    assert mbg.p_alive(X)[0] < 1.0
    assert mbg.log_likelihood_ > bg.log_likelihood_ - 5  # comparable fit quality


def _plain_lifetimes(cls: type, plain: dict[str, np.ndarray]) -> dict[str, float]:
    lt = import_lifetimes()
    fitter = getattr(lt, cls._fitter_class)()
    kwargs = (
        {"initial_params": np.ones(4), "tol": 1e-7, "maxiter": 4000}
        if (cls is ParetoNBDModel)
        else {}
    )
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        fitter.fit(plain["frequency"], plain["recency"], plain["T"], **kwargs)
    return dict(fitter.params_)


def _check_weighted(cls: type, plain: dict[str, np.ndarray]) -> None:
    frame = pl.DataFrame(plain)
    grouped = frame.group_by(frame.columns).len().sort(frame.columns)
    assert grouped.height < frame.height * 0.6  # the comparison is meaningful
    want = _plain_lifetimes(cls, plain)
    ours = cls().fit(frame)  # compresses internally
    weighted = cls().fit(grouped.drop("len"), sample_weight=grouped["len"].to_numpy())
    for k, v in want.items():
        assert ours.params_[k] == pytest.approx(v, rel=1e-4), k
        assert weighted.params_[k] == pytest.approx(v, rel=1e-4), k
    assert ours.n_customers_ == weighted.n_customers_ == frame.height
    assert ours.n_triples_ == grouped.height
    assert ours.log_likelihood_ == pytest.approx(weighted.log_likelihood_, rel=1e-9)


@pytest.mark.parametrize("cls", [BetaGeoModel, ModifiedBetaGeoModel, ParetoNBDModel])
def test_weighted_fit_equals_plain_fit_cdnow(cls: type, cdnow: pd.DataFrame) -> None:
    # Fractional weeks: the float grouping path.
    _check_weighted(cls, {k: cdnow[k].to_numpy(np.float64) for k in ("frequency", "recency", "T")})


@pytest.mark.parametrize("cls", [BetaGeoModel, ModifiedBetaGeoModel])
def test_weighted_fit_equals_plain_fit_integer_days(cls: type) -> None:
    # Whole days: the packed int64-key path. (Pareto/NBD is left out here: on BG/NBD data
    # its dropout parameters run to s, beta ~ 200 where scipy's hyp2f1 gets very slow.)
    sim = simulate_bgnbd(4_000, r=0.6, alpha=15.0, a=0.8, b=2.5, max_T=60, seed=3)
    _check_weighted(cls, {k: sim[k] for k in ("frequency", "recency", "T")})


def test_gamma_gamma_weighted_fit_equals_plain_fit() -> None:
    # Compressed to one row per (frequency, spend) pair with weights, BFGS on this sample
    # stops with "precision loss" at lifetimes' default tolerance on some scipy builds even
    # though the gradient is ~1e-7; the model must still land on the plain fit's optimum.
    sim = simulate_bgnbd(
        3_000, r=0.8, alpha=20.0, a=0.9, b=3.0, max_T=500, seed=2, spend=(6.0, 4.0, 15.0)
    )
    keep = sim["frequency"] > 0
    f, m = sim["frequency"][keep].astype(np.float64), sim["monetary_value"][keep]
    fitter = import_lifetimes().GammaGammaFitter(0.0)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        fitter.fit(f, m)
    ours = GammaGammaModel().fit({"frequency": f, "monetary_value": m})
    for k in ("p", "q", "v"):
        assert ours.params_[k] == pytest.approx(float(fitter.params_[k]), rel=1e-4), k
    assert ours.n_customers_ == keep.sum()


@pytest.mark.parametrize("cls", [BetaGeoModel, GammaGammaModel])
def test_warm_start_reaches_the_cold_optimum(cls: type, monkeypatch: pytest.MonkeyPatch) -> None:
    # Large inputs are fitted from a sample's optimum and curvature; lower the threshold so
    # that a small input takes that path, and compare with the plain fit from 0.1.
    import valuation.optimize

    sim = simulate_bgnbd(
        30_000, r=0.8, alpha=20.0, a=0.9, b=3.0, max_T=400, seed=9, spend=(6.0, 4.0, 15.0)
    )
    cold = cls().fit(sim)
    monkeypatch.setattr(valuation.optimize, "WARM_START_ROWS", 4_000)
    warm = cls().fit(sim)
    assert cold.n_customers_ == warm.n_customers_
    for k, v in cold.params_.items():
        assert warm.params_[k] == pytest.approx(v, rel=1e-5), k


def test_inputs_numpy_pandas_polars_agree(cdnow: pd.DataFrame) -> None:
    a = BetaGeoModel().fit(cdnow[["frequency", "recency", "T"]].to_numpy())
    b = BetaGeoModel().fit(pl.from_pandas(cdnow))
    assert a.params_ == pytest.approx(b.params_, rel=1e-12)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['T'\]"):
        BetaGeoModel().fit(pl.DataFrame({"frequency": [1], "recency": [1.0]}))
    with pytest.raises(ValueError, match="1 customer\\(s\\) with recency > T"):
        BetaGeoModel().fit(pl.DataFrame({"frequency": [1], "recency": [5.0], "T": [3.0]}))


def test_predictions_expand_in_input_order(cdnow: pd.DataFrame) -> None:
    model = BetaGeoModel().fit(cdnow)
    fitter = model._fitted_fitter()
    want = fitter.conditional_expected_number_of_purchases_up_to_time(
        10, cdnow["frequency"], cdnow["recency"], cdnow["T"]
    )
    got = model.expected_purchases(cdnow, 10)
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-12)
    both = model.expected_purchases(cdnow, [5, 10])
    assert both.shape == (len(cdnow), 2)
    np.testing.assert_allclose(both[:, 1], got, rtol=1e-12)
    assert (both[:, 1] >= both[:, 0]).all()
    palive = model.p_alive(cdnow)
    np.testing.assert_allclose(
        palive,
        fitter.conditional_probability_alive(cdnow["frequency"], cdnow["recency"], cdnow["T"]),
        rtol=1e-12,
    )


@pytest.mark.parametrize("cls", [BetaGeoModel, ModifiedBetaGeoModel, ParetoNBDModel])
def test_pickle_round_trip(cls: type, cdnow: pd.DataFrame) -> None:
    model = cls().fit(cdnow)
    clone = pickle.loads(pickle.dumps(model))
    assert clone.params_ == model.params_
    np.testing.assert_array_equal(clone.p_alive(cdnow), model.p_alive(cdnow))
    np.testing.assert_array_equal(
        clone.expected_purchases(cdnow, 52), model.expected_purchases(cdnow, 52)
    )
    assert all(isinstance(v, float) for v in model.params_.values())
    assert not any(callable(v) for v in vars(model).values())


def test_unfitted_model_refuses_to_predict(cdnow: pd.DataFrame) -> None:
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        BetaGeoModel().p_alive(cdnow)
    with pytest.raises(NotFittedError):
        GammaGammaModel().expected_avg_value(cdnow.assign(monetary_value=1.0))


def test_sklearn_conventions() -> None:
    from sklearn.base import clone

    model = BetaGeoModel(penalizer=0.01)
    assert model.get_params()["penalizer"] == 0.01
    assert clone(model).penalizer == 0.01
    assert not hasattr(model, "params_")


def test_convergence_error_becomes_valuation_error(monkeypatch: pytest.MonkeyPatch) -> None:
    lt = import_lifetimes()

    def fail(self: object, *args: object, **kwargs: object) -> None:
        raise lt.utils.ConvergenceError("The model did not converge.")

    # A degenerate input (every customer identical, no repeat purchase) makes lifetimes'
    # optimiser fail for real; pin the failure path regardless of scipy's luck.
    monkeypatch.setattr(ParetoNBDModel, "_fit_params", fail)
    X = pl.DataFrame({"frequency": [1, 2, 0], "recency": [1.0, 2.0, 0.0], "T": [3.0] * 3})
    with pytest.raises(ValuationError, match=r"pareto fit did not converge.*valuation\.penalizer"):
        ParetoNBDModel().fit(X)


def test_nan_parameters_become_valuation_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def nan_params(self: object, u: object, w: object) -> dict[str, float]:
        return {"r": float("nan"), "alpha": 1.0, "a": 1.0, "b": 1.0}

    monkeypatch.setattr(BetaGeoModel, "_fit_params", nan_params)
    X = pl.DataFrame({"frequency": [1, 2, 0], "recency": [1.0, 2.0, 0.0], "T": [3.0] * 3})
    with pytest.raises(ValuationError, match=r"bgnbd fit produced invalid parameters.*penalizer"):
        BetaGeoModel().fit(X)


def test_nan_predictions_become_valuation_error() -> None:
    model = BetaGeoModel()
    # a = 1 puts a zero in the denominator of E[purchases] (first term (a+b+x-1)/(a-1)).
    model.params_ = {"r": 0.5, "alpha": 10.0, "a": 1.0, "b": 2.0}
    model.time_scale_ = 1.0
    X = pl.DataFrame({"frequency": [300], "recency": [700.0], "T": [710.0]})
    with pytest.raises(ValuationError, match=r"bgnbd produced 1 non-finite expected_purchases"):
        model.expected_purchases(X, 365)
