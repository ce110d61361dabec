"""Scorecard fit time against scikit-learn's LogisticRegression on the same matrix, and binning time.

    python bench/learn_fit.py                 # 200,000 leads × 50 features (about a minute)
    python bench/learn_fit.py --leads 1000000 # the issue's size: 1M × 50

The matrix is synthetic (numeric features, some with missing values, a logistic outcome). The scorecard
fits in two stages, timed apart: binning (every feature, with its weights of evidence; target ≤ 60 s at
1M × 50), and the logistic regression on the weight-of-evidence columns, one per feature (target ≤ 1.5×
scikit-learn's LogisticRegression on the raw matrix, same C and solver). Prints the times and ratios;
nothing is asserted.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.linear_model import LogisticRegression

from leadscore.learn.scorecard import Scorecard, code_rows

MISSING_SHARE = 0.05  # a twentieth of each odd-numbered feature is missing, so missing bins are exercised


def matrix(leads: int, features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(leads, features))
    beta = rng.normal(size=features) / np.sqrt(features)
    logit = X @ beta + 0.5 * np.sin(2 * X[:, 0]) - 1.5  # one non-linear effect that binning can find
    y = (rng.random(leads) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    for j in range(1, features, 2):
        X[rng.random(leads) < MISSING_SHARE, j] = np.nan
    return X, y


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--leads", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    X, y = matrix(args.leads, args.features, args.seed)
    print(f"{args.leads:,} leads × {args.features} features, {y.mean():.1%} converted")

    # scikit-learn cannot take NaN: it gets the same matrix with missing values imputed by the mean
    filled = np.where(np.isnan(X), np.nanmean(X, axis=0), X)
    started = time.perf_counter()
    reference = LogisticRegression(C=1.0, max_iter=1000).fit(filled, y)
    sklearn_s = time.perf_counter() - started

    started = time.perf_counter()
    sc = Scorecard(C=1.0, min_class_count=1).fit(X, y)
    total_s = time.perf_counter() - started

    # the two stages again, apart: binning (and coding every value by its bin's weight of evidence),
    # then the regression on the evidence columns, as Scorecard.fit runs it
    started = time.perf_counter()
    W = code_rows(sc._indices(X), sc.woe_, sc.bins_).z
    assign_s = time.perf_counter() - started
    started = time.perf_counter()
    lr = LogisticRegression(C=1.0, max_iter=1000).fit(W, y)
    regression_s = time.perf_counter() - started
    binning_s = total_s - regression_s

    print(f"scikit-learn LogisticRegression   {sklearn_s:8.2f} s")
    print(
        f"scorecard regression (WoE)       {regression_s:8.2f} s   ratio {regression_s / sklearn_s:.2f}x (target ≤ 1.5x), "
        f"{int(lr.n_iter_[0])} iterations against {int(reference.n_iter_[0])}"
    )
    print(
        f"scorecard binning + points        {binning_s:8.2f} s   (target ≤ 60 s; coding the rows alone {assign_s:.2f} s)"
    )
    print(f"scorecard fit end to end          {total_s:8.2f} s   ratio {total_s / sklearn_s:.2f}x")


if __name__ == "__main__":
    main()
