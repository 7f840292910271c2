"""Config sections of the model packages: segmentation, valuation, churn, retention, contagion,
loyalty (and the LightGBM settings the churn and loyalty models share).

Every name here is re-exported by :mod:`crm_engine.config`, which holds the pipeline's own
sections, the whole ``PipelineConfig`` and the loading; import from there.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Section(BaseModel):
    """Base of every config section: an unknown key is an error, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SegmentationConfig(Section):
    """Rule-based dimensions and behavioural clusters."""

    algorithm: Literal["kmeans", "gmm", "bisecting_kmeans"] = "kmeans"
    k: int | Literal["auto"] = "auto"
    k_min: Annotated[int, Field(ge=2)] = 4
    k_max: Annotated[int, Field(ge=2)] = 9
    sample_size: Annotated[int, Field(gt=0)] = 200_000
    silhouette_sample: Annotated[int, Field(gt=0)] = 10_000
    k_tolerance: Annotated[float, Field(ge=0)] = Field(
        0.0, description="k='auto': smallest k whose silhouette is within this of the best"
    )
    spend_cut_points: list[float] | None = Field(
        None,
        description="two cut points (low/medium, medium/high) on trailing-12-month "
        "spend; default tertiles",
    )
    features: list[str] | None = Field(None, description="profile columns to cluster on")
    feature_weights: dict[str, Annotated[float, Field(ge=0)]] = Field(
        {}, description="feature -> weight in the clustering distance (on top of the defaults)"
    )
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> SegmentationConfig:
        if self.k_max < self.k_min:
            raise ValueError(f"k_max={self.k_max} should be >= k_min={self.k_min}")
        if isinstance(self.k, int) and self.k < 2:
            raise ValueError(f"k={self.k} should be >= 2 or 'auto'")
        if self.spend_cut_points is not None and (
            len(self.spend_cut_points) != 2 or self.spend_cut_points[0] >= self.spend_cut_points[1]
        ):
            raise ValueError("spend_cut_points must be two increasing numbers")
        return self


class LifecycleRules(Section):
    """Rules that place a customer in new / active / at_risk / dormant."""

    new_tenure_days: Annotated[int, Field(ge=0)] = 90
    dormant_recency_days: Annotated[int, Field(ge=0)] = 90
    dormant_p_alive: Annotated[float, Field(ge=0, le=1)] = 0.3
    at_risk_p_alive: Annotated[float, Field(ge=0, le=1)] = 0.7
    at_risk_contract_days: Annotated[int, Field(ge=0)] = Field(
        90, description="postpaid: at_risk when the minimum term ends within this many days"
    )
    at_risk_bill_trend: Annotated[float, Field(ge=-1, le=0)] = Field(
        -0.2,
        description="postpaid: at_risk when the bill falls this much (spend_trend: last 90 "
        "days against the 90 before, in [-1, 1])",
    )


class HazardConfig(Section):
    """The postpaid customers' own monthly hazard (``valuation.postpaid_model = "hazard"``):
    a discrete-time logistic hazard fitted on customer-months after cuts before as_of."""

    landmarks: Annotated[int, Field(ge=1)] = Field(
        2, description="cuts before as_of whose customers are followed (one every landmark_months)"
    )
    landmark_months: Annotated[int, Field(ge=1, le=24)] = Field(
        6, description="30-day months each cut's customers are followed"
    )
    max_customers: Annotated[int, Field(gt=0)] = Field(
        100_000,
        description="customers whose profiles are read at each cut, at most (a hashed "
        "sample): bounds the training rows at any customer count",
    )
    C: Annotated[float, Field(gt=0)] = Field(
        1.0, description="inverse L2 regularisation of the logistic regression"
    )


class ValuationConfig(Section):
    """CLV, P(alive), lifecycle and profit."""

    model: Literal["bgnbd", "mbgnbd", "pareto", "auto"] = Field(
        "bgnbd",
        description="purchase model of the non-contractual (prepaid) customers; auto: the "
        "lowest holdout error",
    )
    postpaid_model: Literal["auto", "contract", "hazard", "btyd"] = Field(
        "auto",
        description="btyd: postpaid customers valued like prepaid, by the purchase model; "
        "contract: by a shifted-beta-geometric retention curve fitted on observed churn "
        "times their trailing monthly bill; hazard: by each customer's own monthly hazard "
        "(tenure, months to the term's end, bill, complaints, network experience, ...; "
        "[valuation.hazard]) times the bill; auto: whichever of the three predicted postpaid "
        "revenue best on the revenue holdout (the purchase model without one; see "
        "benchmarks/results/postpaid.md)",
    )
    horizon_days: Annotated[int, Field(gt=0)] = 365
    annual_discount_rate: Annotated[float, Field(ge=0, lt=1)] = 0.10
    margin: Annotated[float, Field(gt=0, le=1)] = 0.30
    cost_per_interaction: Annotated[float, Field(ge=0)] = 2.0
    penalizer: Annotated[float, Field(ge=0)] = 0.0
    holdout_days: Annotated[int, Field(ge=0)] = Field(
        90,
        description="the purchase holdout's window (repeat purchases); 0 skips it and the "
        "revenue holdout (revenue by plan type over horizon_days before as_of)",
    )
    max_holdout_customers: Annotated[int, Field(gt=0)] = Field(
        125_000,
        description="customers the holdout compares the models on, at most (a hashed share "
        "when there are more); the fit at as_of always sees every customer",
    )
    tier_quantiles: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        [0.5, 0.8, 0.95], description="CLV quantiles separating bronze|silver|gold|platinum"
    )
    lifecycle: LifecycleRules = LifecycleRules()
    hazard: HazardConfig = HazardConfig()

    @field_validator("tier_quantiles")
    @classmethod
    def _three_increasing(cls, v: list[float]) -> list[float]:
        if len(v) != 3 or any(b <= a for a, b in itertools.pairwise(v)):
            raise ValueError(f"must be 3 strictly increasing quantiles, got {v}")
        return v


# Bounds of the LightGBM settings (shared by the base section and the per-model defaults).
_LearningRate = Annotated[float, Field(gt=0, le=1)]
_NumLeaves = Annotated[int, Field(ge=2)]
# churn.model.MAX_TREE_DEPTH: pred_contrib (TreeSHAP) time grows with depth. The models
# still cap and warn when constructed directly with a deeper max_depth.
_MaxDepth = Annotated[int, Field(ge=1, le=8)]
_MinChildSamples = Annotated[int, Field(ge=0)]
_NEstimators = Annotated[int, Field(gt=0)]
_Fraction = Annotated[float, Field(gt=0, le=1)]
_SubsampleFreq = Annotated[int, Field(ge=0)]
_RegLambda = Annotated[float, Field(ge=0)]


class LightGBMConfig(Section):
    """LightGBM settings of a model (``lightgbm.LGBMClassifier`` argument names).

    The defaults here are LightGBM's own, except ``max_depth`` (LightGBM: unlimited). Each
    model's section uses a subclass with that model's defaults, so a partial table such as
    ``[churn.lightgbm]`` with only ``learning_rate`` keeps the model's other defaults.
    """

    learning_rate: _LearningRate = 0.1
    num_leaves: _NumLeaves = 31
    max_depth: _MaxDepth = 6
    min_child_samples: _MinChildSamples = Field(20, description="min_data_in_leaf")
    n_estimators: _NEstimators = Field(
        100, description="maximum number of trees; early stopping chooses fewer"
    )
    subsample: _Fraction = Field(1.0, description="row fraction per tree (bagging_fraction)")
    subsample_freq: _SubsampleFreq = Field(
        0, description="bag every this many trees; 0 disables row subsampling"
    )
    colsample_bytree: _Fraction = Field(1.0, description="feature fraction per tree")
    reg_lambda: _RegLambda = Field(0.0, description="L2 regularisation of the leaf values")


class ChurnLightGBMConfig(LightGBMConfig):
    """LightGBM settings of the churn model (``[churn.lightgbm]``).

    Shallow, heavily regularised trees: churn is rare (~5% per quarter) and smooth; on the
    generator's ground truth these beat 31-leaf trees by ~0.01 AUC out of time, and keep
    ``pred_contrib`` fast. Learning rate 0.03, not 0.06: at 0.06 the 1M operator's 499,001
    training rows keep 267 trees instead of 591 at out-of-time AUC 0.7773 against 0.7775, in
    less than half the time to fit and score, but the churn probabilities of two unchanged
    months of a small operator moved further apart (PSI 0.105, over the 0.1 drift warning).
    """

    learning_rate: _LearningRate = 0.03
    num_leaves: _NumLeaves = 7
    max_depth: _MaxDepth = 3
    min_child_samples: _MinChildSamples = 300
    n_estimators: _NEstimators = 1500
    subsample: _Fraction = 0.8
    subsample_freq: _SubsampleFreq = 1
    colsample_bytree: _Fraction = 0.5


class LoyaltyLightGBMConfig(LightGBMConfig):
    """LightGBM settings of the loyalty model (``[loyalty.lightgbm]``); no row or feature
    subsampling (LightGBM's defaults).

    All ``n_estimators`` trees are grown (``[loyalty] early_stopping_rounds`` unset) and the L2
    penalty on the leaf values bounds the fit: on a few hundred survey answers the promoter
    probability of the least loyal customers then converges to one value instead of moving with
    a tree count chosen by a few dozen validation answers.
    """

    learning_rate: _LearningRate = 0.1
    num_leaves: _NumLeaves = 15
    max_depth: _MaxDepth = 5
    min_child_samples: _MinChildSamples = 50
    n_estimators: _NEstimators = Field(
        150, description="number of trees (all grown unless loyalty.early_stopping_rounds is set)"
    )
    reg_lambda: _RegLambda = Field(100.0, description="L2 regularisation of the leaf values")


class ChurnConfig(Section):
    """Churn model: LightGBM or a logistic regression, whichever validates better."""

    model: Literal["auto", "lightgbm", "logistic"] = Field(
        "auto",
        description="auto: fit both LightGBM and an L2 logistic regression (one-hot, scaled, "
        "signed-log numerics) and keep the higher ROC-AUC on the validation cut's "
        "early-stopping half; lightgbm or logistic: that one only",
    )
    horizon_days: Annotated[int, Field(gt=0)] = 90
    calibration: Literal["isotonic", "platt"] = "platt"
    risk_thresholds: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        [0.06, 0.11],
        description="probabilities (over horizon_days) separating low|medium|high "
        "risk; with a ~5% quarterly churn rate these put about the top decile in high. Under "
        "[retention] bands = 'profit' (the default) high is who is worth an offer and only "
        "the first splits medium from low",
    )
    drivers_top_n: Annotated[int, Field(ge=0)] = 5_000
    drivers_min_probability: Annotated[float, Field(ge=0, le=1)] = 0.11
    drivers_max: Annotated[int, Field(ge=0)] = Field(
        50_000,
        description="customers explained at most (the highest value at risk among those the "
        "two rules above select): bounds the TreeSHAP time at any number of customers",
    )
    n_drivers: Annotated[int, Field(gt=0, le=20)] = 3
    extra_features: list[str] = []
    max_training_customers: Annotated[int, Field(gt=0)] = Field(
        125_000,
        description="customers per training cut, at most (a hashed share of them, the same at "
        "every cut, when there are more): bounds the time and memory of training at any "
        "customer count. At 1M customers 250,000 gave out-of-time AUC 0.7775 and 125,000 "
        "0.7760 on the same validation customers, in about half the fitting time",
    )
    training_snapshots: Annotated[int, Field(ge=1, le=24)] = Field(
        6,
        description="training cuts stacked (as_of - 2h, then snapshot_step_days earlier each), "
        "each labelled by its own window, all windows ending by the validation cut as_of - h. "
        "6 needs 2h + 150 days of history before as_of (330 at h = 90). At 100,000 generated "
        "customers the mean gap to the as-of oracle's AUC over four report halves was 0.0121 "
        "with 3, 0.0097 with 6 and 0.0089 with 12 (which needs 17 months of history); the "
        "loyalty model builds the profiles of 6 cuts anyway (loyalty.training_snapshots)",
    )
    snapshot_step_days: Annotated[int, Field(gt=0)] = Field(
        30, description="days between two stacked training cuts (monthly by default)"
    )
    learning_curve: bool = Field(
        True,
        description="also fit on the latest n/2, n/4, ... 1 snapshots (rounded down; 1 and 3 "
        "of 6) and report the out-of-time AUC and Brier of each (the report's learning curve); "
        "the kept model uses all n",
    )
    lightgbm: ChurnLightGBMConfig = ChurnLightGBMConfig()
    early_stopping_rounds: Annotated[int, Field(gt=0)] = 50
    seed: int = 0


class RetentionConfig(Section):
    """What a retention offer costs and how often it works (``[retention]``): the money behind
    ``churn_risk_band = "high"`` and ``retention_profit`` (Verbraken, Verbeke & Baesens 2013).

    Contacting a customer costs ``contact_cost``; a churner accepts the offer with probability
    ``accept_rate`` and then stays (their CLV kept, the offer paid); every non-churner accepts
    (the offer is paid for nothing). The profit-optimal contact set is everyone whose expected
    profit is positive; the report's EMPC integrates over an acceptance rate drawn from a Beta
    distribution with mean ``accept_rate`` and concentration ``accept_concentration``.
    """

    bands: Literal["profit", "probability"] = Field(
        "profit",
        description="profit: churn_risk_band high = in the profit-optimal contact set (needs "
        "the valuation stage's CLV), medium / low by churn.risk_thresholds[0]; probability: "
        "low | medium | high by churn.risk_thresholds alone",
    )
    offer_cost: Annotated[float, Field(ge=0)] = Field(
        10.0, description="cost of the incentive to a customer who accepts it (currency)"
    )
    contact_cost: Annotated[float, Field(ge=0)] = Field(
        1.0, description="cost of contacting one customer (currency)"
    )
    accept_rate: Annotated[float, Field(gt=0, le=1)] = Field(
        0.3, description="share of would-be churners who accept the offer and stay"
    )
    accept_concentration: Annotated[float, Field(gt=0)] = Field(
        20.0,
        description="alpha + beta of the Beta distribution of the acceptance rate (EMPC); "
        "larger is surer of accept_rate (Verbraken et al.: Beta(6, 14), i.e. 0.3 and 20)",
    )


class ContagionConfig(Section):
    """Churn contagion over the call graph (``[contagion]``): the ``network_value`` and
    ``value_at_risk_network`` columns.

    The effect of a contact's leaving on a customer's monthly churn hazard is estimated from
    the ``months`` complete months before ``as_of`` (see :mod:`churn.contagion`); the window a
    departure counts in is ``features.contagion_days``.
    """

    enabled: bool = Field(
        True,
        description="estimate contagion and value what each customer takes with them (needs "
        "the calls table and the valuation stage)",
    )
    months: Annotated[int, Field(ge=2, le=60)] = Field(
        12, description="months of history the contagion effect is estimated on"
    )
    max_customers: Annotated[int, Field(gt=0)] = Field(
        250_000,
        description="customers in the estimate, at most (a hashed share of them); network "
        "values are computed for everyone",
    )
    max_rows: Annotated[int, Field(gt=0)] | None = Field(
        500_000,
        description="customer months the regression sees, at most: every churned month and "
        "a random sample of the others (case-control: the effect is unbiased; at 1M customers "
        "the fit takes a quarter of the time); none: every month",
    )


class LoyaltyConfig(Section):
    """LightGBM loyalty (promoter / passive / detractor) model."""

    enabled: bool = True
    lightgbm: LoyaltyLightGBMConfig = LoyaltyLightGBMConfig()
    early_stopping_rounds: Annotated[int, Field(gt=0)] | None = Field(
        None,
        description="stop when the validation log-loss has not improved for this many trees; "
        "unset (the default): grow all lightgbm.n_estimators trees. Half the validation cut's "
        "survey answers (a few dozen on a small operator) would choose the tree count, and the "
        "promoter probabilities of the least loyal customers move with it from month to month",
    )
    training_snapshots: Annotated[int, Field(ge=1, le=24)] = Field(
        6,
        description="training cuts the loyalty model learns from: the churn model's, then "
        "earlier ones churn.snapshot_step_days apart, as many as the history allows (at least "
        "the churn model's); only the rows of customers who answered a survey in the cut's label "
        "window are kept (under a tenth of the customers on the generated operator)",
    )
    seed: int = 0
