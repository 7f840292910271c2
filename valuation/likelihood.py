"""lifetimes' BG/NBD and Gamma-Gamma likelihoods, factored over distinct values, with gradients.

``lifetimes.BetaGeoFitter._negative_log_likelihood`` and
``lifetimes.GammaGammaFitter._negative_log_likelihood`` evaluate every term on every row and
get their gradient from autograd. Most of those terms depend on one column only: the
``gammaln`` terms on the frequency (a few hundred distinct values), ``log(alpha + T)`` on
``T`` and ``log(alpha + recency)`` on the recency (a few hundred days each). The classes
below evaluate each term once per distinct value, gather it to the rows, and sum the
gradient in closed form: the same function, about four times faster for BG/NBD (0.03 s
against 0.11 s over 574k distinct triples) and twenty times for Gamma-Gamma. A test checks
value and gradient against lifetimes' function and autograd at many parameter points.

Both are objectives over log-parameters, as in lifetimes: ``fun(log_params) -> (nll, grad)``
with ``nll = -sum(w * ll) / sum(w) + penalizer * sum(params ** 2)``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, gammaln

__all__ = ["BetaGeoLikelihood", "GammaGammaLikelihood"]


_DIRECT_CODES = 1 << 21


def _codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A table of values and each row's index into it (int32, for fast gathers).

    Whole numbers below 2**21 (days, counts: the usual case) index a table of
    ``0..max`` directly, which saves a sort; other values go through ``np.unique``.
    """
    if len(values) == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int32)
    low, high = float(values.min()), float(values.max())
    if low >= 0 and high < _DIRECT_CODES:
        index = values.astype(np.int32)
        if np.array_equal(index, values):
            return np.arange(int(high) + 1, dtype=np.float64), index
    distinct, index = np.unique(values, return_inverse=True)
    return distinct, index.astype(np.int32)


class BetaGeoLikelihood:
    """BG/NBD negative log-likelihood (FHL 2005, section 7) of weighted (x, t_x, T) rows.

    ``ll = A1(x) + A2(x) + log(exp(A3) + [x > 0] exp(A4))`` with
    ``A1 = lnG(r + x) - lnG(r) + r ln(alpha)``,
    ``A2 = lnG(a + b) + lnG(b + x) - lnG(b) - lnG(a + b + x)``,
    ``A3 = -(r + x) ln(alpha + T)`` and
    ``A4 = ln(a) - ln(b + x - 1) - (r + x) ln(alpha + t_x)``.
    Rows without a repeat purchase reduce to ``A1 + A2 + A3`` and are summed per ``T``.
    Recency and ``T`` are multiplied by ``time_scale`` (lifetimes fits with max T = 1).
    """

    def __init__(
        self,
        frequency: np.ndarray,
        recency: np.ndarray,
        T: np.ndarray,
        weights: np.ndarray,
        penalizer: float = 0.0,
        time_scale: float = 1.0,
    ) -> None:
        x = np.asarray(frequency, dtype=np.float64)
        w = np.asarray(weights, dtype=np.float64)
        self.penalizer = float(penalizer)
        self.total = float(w.sum())
        self.xs, x_code = _codes(x)
        self.w_x = np.bincount(x_code, weights=w, minlength=len(self.xs))
        zero = x == 0
        self.t0, t0_code = _codes(np.asarray(T, dtype=np.float64)[zero])
        self.w0 = np.bincount(t0_code, weights=w[zero], minlength=len(self.t0))
        self.t0 = self.t0 * time_scale
        rep = ~zero
        self.w = w[rep]
        self.x = x[rep]
        self.ts, self.t_code = _codes(np.asarray(T, dtype=np.float64)[rep])
        self.rs, self.r_code = _codes(np.asarray(recency, dtype=np.float64)[rep])
        self.ts, self.rs = self.ts * time_scale, self.rs * time_scale
        # Row index into the distinct frequencies of the repeat rows (x >= 1).
        self.x_code = x_code[rep]

    def __call__(self, log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(np.asarray(log_params, dtype=np.float64))
        r, alpha, a, b = params
        xs, wx = self.xs, self.w_x
        # Terms of the frequency alone, summed with the weight of each frequency.
        ll = float(
            wx
            @ (
                gammaln(r + xs)
                - gammaln(r)
                + r * np.log(alpha)
                + gammaln(a + b)
                + gammaln(b + xs)
                - gammaln(b)
                - gammaln(a + b + xs)
            )
        )
        d_r = float(wx @ (digamma(r + xs) - digamma(r) + np.log(alpha)))
        d_alpha = self.total * r / alpha
        d_a = float(wx @ (digamma(a + b) - digamma(a + b + xs)))
        d_b = float(wx @ (digamma(a + b) + digamma(b + xs) - digamma(b) - digamma(a + b + xs)))
        # Customers without a repeat purchase: A3 with x = 0, per distinct T.
        if len(self.t0):
            log_t0 = np.log(alpha + self.t0)
            ll -= r * float(self.w0 @ log_t0)
            d_r -= float(self.w0 @ log_t0)
            d_alpha -= r * float(self.w0 @ (1.0 / (alpha + self.t0)))
        # Repeat customers: log(exp(A3) + exp(A4)) row by row, from per-value tables.
        if len(self.w):
            w, x = self.w, self.x
            log_t = np.log(alpha + self.ts)[self.t_code]
            log_r = np.log(alpha + self.rs)[self.r_code]
            log_b = np.log(b + self.xs - 1.0, where=self.xs >= 1, out=np.zeros(len(self.xs)))
            c = r + x
            a3 = -c * log_t
            a4 = (np.log(a) - log_b)[self.x_code] - c * log_r
            # log(exp(a3) + exp(a4)) = top + log1p(exp(-|a3 - a4|)), and the posterior share
            # of the a3 term (numpy's logaddexp alone takes longer than these passes together).
            top = np.maximum(a3, a4)
            small = np.exp(-np.abs(a3 - a4))
            ll += float(w @ (top + np.log1p(small)))
            share = small / (1.0 + small)  # share of the smaller term
            p3 = np.where(a3 >= a4, 1.0 - share, share)
            p3 *= w
            p4 = w - p3
            d_r -= float(p3 @ log_t + p4 @ log_r)
            d_alpha -= float(
                (p3 * c) @ (1.0 / (alpha + self.ts))[self.t_code]
                + (p4 * c) @ (1.0 / (alpha + self.rs))[self.r_code]
            )
            d_a += float(p4.sum()) / a
            inv_b = np.divide(
                1.0, b + self.xs - 1.0, where=self.xs >= 1, out=np.zeros(len(self.xs))
            )
            d_b -= float(p4 @ inv_b[self.x_code])
        grad_ll = np.array([d_r, d_alpha, d_a, d_b])
        nll = -ll / self.total + self.penalizer * float(params @ params)
        # Chain rule to log-parameters: d/d log(theta) = theta * d/d theta.
        grad = params * (-grad_ll / self.total + 2.0 * self.penalizer * params)
        return nll, grad


class GammaGammaLikelihood:
    """Gamma-Gamma negative log-likelihood (Fader, Hardie and Lee 2005, note 025, eq. 1a).

    ``ll = lnG(px + q) - lnG(px) - lnG(q) + q ln(v) + (px - 1) ln(m) + px ln(x)
    - (px + q) ln(xm + v)`` for weighted rows of frequency ``x > 0`` and mean spend
    ``m > 0``. Only the last term needs the rows at each evaluation; the rest are sums
    computed once or per distinct frequency.
    """

    def __init__(
        self,
        frequency: np.ndarray,
        monetary_value: np.ndarray,
        weights: np.ndarray,
        penalizer: float = 0.0,
    ) -> None:
        x = np.asarray(frequency, dtype=np.float64)
        m = np.asarray(monetary_value, dtype=np.float64)
        w = np.asarray(weights, dtype=np.float64)
        self.penalizer = float(penalizer)
        self.total = float(w.sum())
        xs, code = _codes(x)
        w_x = np.bincount(code, weights=w, minlength=len(xs))
        used = w_x > 0  # x = 0 is outside the model's support (log and gammaln of 0)
        self.xs, self.w_x = xs[used], w_x[used]
        log_m = np.log(m)
        self.sum_w_log_m = float(w @ log_m)
        self.sum_wx_log_m = float((w * x) @ log_m)
        self.xm = x * m
        self.w = w
        self.wx = w * x

    def __call__(self, log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(np.asarray(log_params, dtype=np.float64))
        p, q, v = params
        xs, wx_s, total = self.xs, self.w_x, self.total
        px = p * xs
        log_xs = np.log(xs)
        log_v = np.log(v)
        log_xmv = np.log(self.xm + v)
        inv_xmv = 1.0 / (self.xm + v)
        s_w_log, s_wx_log = float(self.w @ log_xmv), float(self.wx @ log_xmv)
        s_w_inv, s_wx_inv = float(self.w @ inv_xmv), float(self.wx @ inv_xmv)
        ll = (
            float(wx_s @ (gammaln(px + q) - gammaln(px) + px * log_xs))
            + total * (q * log_v - gammaln(q))
            + p * self.sum_wx_log_m
            - self.sum_w_log_m
            - p * s_wx_log
            - q * s_w_log
        )
        d_p = (
            float((wx_s * xs) @ (digamma(px + q) - digamma(px) + log_xs))
            + self.sum_wx_log_m
            - s_wx_log
        )
        d_q = float(wx_s @ digamma(px + q)) + total * (log_v - digamma(q)) - s_w_log
        d_v = total * q / v - p * s_wx_inv - q * s_w_inv
        grad_ll = np.array([d_p, d_q, d_v])
        nll = -ll / total + self.penalizer * float(params @ params)
        grad = params * (-grad_ll / total + 2.0 * self.penalizer * params)
        return nll, grad
