"""The rule budget, and the candidate chosen by time-forward cross-validation on the training rows.

A scorecard with more rules than the budget is learned again until it fits (``fit_within``). How the
budget is spent is a choice: coarser bins for every feature, or the strongest features only, at two,
three or four bins each; and which feature families to search (event counts per window, distinct days,
recency, the account's committee, ratios of the last window to the one before). Each candidate is
fitted on the earlier rows and measured on later ones (``folds``): the rows of the newest cutoffs, of
leads the fold did not train on, as a model is used after it is learned. Rows without times (a CSV
without a time column) are split by a hash of their id instead, and the choice says so.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from leadscore.learn.binning import Column
from leadscore.learn.features import FAMILIES, PLACEHOLDERS, Feature, family
from leadscore.learn.metrics import roc_auc
from leadscore.learn.scorecard import Scorecard, read_columns
from leadscore.learn.to_model import model_document, rules_per_feature
from leadscore.model.scoring_model import MAX_RULES

FOLDS = 3
TOP_BINS = (2, 3, 4)  # the "strongest features only" candidates: this many bins per feature
BoolArray = npt.NDArray[np.bool_]


@dataclass
class Fitted:
    """A scorecard within the rule budget, the features it kept, and what was done to fit."""

    scorecard: Scorecard
    keep: list[int]
    rules: int
    notes: list[str] = field(default_factory=list)
    unconstrained: tuple[Scorecard, list[int], int] | None = None  # the first fit, where it had too many
    rounds: list[tuple[tuple[int, ...], Scorecard]] = field(default_factory=list)  # each fit: its columns


def _as_fixed(sc: Scorecard, keep: Sequence[int], params: dict[str, Any]) -> Scorecard | None:
    """``sc`` (a fit of the columns ``keep`` with ``C`` or the number of pairs chosen by cross-validation)
    as the fit of the same rows and columns with ``params`` would be, where that is the same fit: the
    same other parameters, ``params``' C the one chosen and its number of pairs the number found. The
    fit after the choice does not depend on how C and the number of pairs were reached (a search that
    found fewer pairs than it could take stopped for want of a gain, and stops there with any larger
    limit), so it is the same floats; a copy carries ``params``' settings as a fresh fit would."""
    given = sc.get_params()
    C, pairs = params.get("C", given["C"]), params.get("interactions", given["interactions"])
    if not isinstance(C, float) or not isinstance(pairs, int) or C != sc.C_ or pairs != len(sc.pairs_):
        return None
    wanted = {**given, **params, "C": given["C"], "interactions": given["interactions"]}
    if wanted != given:
        return None
    out = copy.copy(sc)
    return out.set_params(C=C, interactions=pairs)


def stand_in(rows: int, columns: int) -> npt.NDArray[Any]:
    """A matrix of ``rows`` × ``columns`` without values (one ``None`` seen everywhere, read-only), for a
    scorecard given the columns as ``read_columns`` reads them: it reads the values from those and only
    the shape from the matrix, and taking rows or columns of an object matrix copies every reference."""
    return np.broadcast_to(np.empty((1, 1), dtype=object), (rows, columns))


def count_rules(sc: Scorecard) -> int:
    try:
        document = model_document(sc, "count")
    except ValueError:  # nothing learned: no rule
        return 0
    return len(document["fit"]) + len(document["engagement"])


def fit_within(
    X: npt.NDArray[Any],
    y: npt.NDArray[Any],
    groups: Sequence[Any] | None,
    features: Sequence[Feature],
    keep: Sequence[int],
    params: dict[str, Any],
    max_rules: int,
    columns: Sequence[Column] | None = None,
    earlier: Fitted | None = None,
    settle: bool | None = None,
) -> Fitted:
    """The scorecard on the columns ``keep``: a feature fitted against its own evidence is left out; a
    scorecard with more than ``max_rules`` rules is learned again with fewer, coarser bins (neighbours
    merged by the least information lost), then without the features worth the fewest points, until it
    fits. The model written is still exactly the scorecard fitted. ``columns``: X's columns as
    ``read_columns`` reads them (with ``params``' placeholders), read once for every refit.

    With ``C="cv"`` the regularisation is chosen by the first fit and kept by the later ones: they
    learn on the same rows with a few features fewer or coarser bins, and choosing it again on the
    same folds was a third of what learning cost on the funnel (``bench/README.md``).

    With ``interactions="cv"`` (the full model) the features settle first without pairs: the first
    round, and every round after one that left out features fitted against their evidence, is fitted
    without pairs; once no feature is against its evidence the same columns are fitted with the number
    of pairs chosen by cross-validation. A feature against its evidence there is left out and the rounds
    without pairs resume, so the model is always a round with its pairs, checked against its evidence.
    The pair search on every fold in the rounds that only settle the features (their number of pairs
    was chosen again once they settled anyway) was a third of what the full model cost on X Education.
    With a number of pairs given (the candidates' fits on the folds) every round takes them, unless
    ``settle``: there the search is a crossing kept for the rounds after it, not a search on every fold,
    and settling first added regressions (a round without pairs, then one with them, wherever the pairs
    put a feature against its evidence: the shoppers' candidates 62 → 73). The chosen candidate's fit
    with the full model's rounds (``earlier``) settles as the full model did, so that it takes them.

    ``earlier``: a ``fit_within`` of the same rows and columns (``learn``'s full model, whose C and
    number of pairs ``params`` fix): a round on the same columns whose fit is the one these ``params``
    give (without pairs, or with them) is taken from it instead of fitted again (``_as_fixed``)."""
    params, keep, notes = dict(params), list(keep), []
    unconstrained: tuple[Scorecard, list[int], int] | None = None
    rounds: list[tuple[tuple[int, ...], Scorecard]] = []
    pairs = params.get("interactions", Scorecard().interactions)
    # fitting without pairs until no feature is against its evidence (see the docstring)
    settle = (pairs == "cv" if settle is None else settle) and pairs != 0
    settling = settle
    known = [] if earlier is None else earlier.rounds
    while True:
        chosen = [features[j] for j in keep]
        read = None if columns is None else [columns[j] for j in keep]
        rows = X[:, keep] if read is None else stand_in(len(X), len(keep))
        now = {**params, "interactions": 0 if settling else pairs}
        # a round of ``earlier`` on these columns whose fit is this one (without pairs, or with them)
        sc = next((fit for k, found in known if k == tuple(keep)
                   if (fit := _as_fixed(found, keep, {"features": chosen, **now})) is not None), None)  # fmt: skip
        if sc is None:
            sc = Scorecard(chosen, **now).fit(rows, y, groups=groups, columns=read)
        rounds.append((tuple(keep), sc))
        params["C"] = sc.C_
        against = [i for i in range(len(keep)) if sc.coef_[i] < 0]
        # points must grow with a bin's evidence: a feature fitted against it is left out
        if against and len(against) < len(keep):
            notes.append("left out " + ", ".join(chosen[i].name for i in against)
                         + ": fitted against their own evidence (their points would fall as their conversion rate rises)")  # fmt: skip
            keep = [j for i, j in enumerate(keep) if i not in set(against)]
            settling = settle
            continue
        if settling:
            settling = False  # the features settled: now with their pairs
            continue
        rules = count_rules(sc)
        if rules <= max_rules:
            return Fitted(sc, keep, rules, notes, unconstrained, rounds)
        if unconstrained is None:
            unconstrained = (sc, list(keep), rules)
        bins = int(params.get("max_bins", Scorecard().max_bins))
        if bins > 2:
            params["max_bins"] = max(2, min(bins - 1, bins * max_rules // rules))
            change = f"with at most {params['max_bins']} bins per feature"
        else:
            spans = [int(p.max() - p.min()) for p in sc.points_]
            worth = [i for i in range(len(keep)) if spans[i]]  # features without points have no rules
            weakest = sorted(worth, key=lambda i: (spans[i], chosen[i].name))[: rules - max_rules]
            change = "without " + ", ".join(chosen[i].name for i in weakest)
            keep = [j for i, j in enumerate(keep) if i not in set(weakest)]
        notes.append(f"{rules} rules are more than the budget ({max_rules}): learned again {change}")


@dataclass(frozen=True)
class Candidate:
    """Which features to start from and how many bins each: ``top`` the strongest features only."""

    families: tuple[str, ...]
    top: int | None = None  # bins per feature for the strongest-features candidate; None: coarser bins

    def describe(self, all_families: tuple[str, ...]) -> str:
        left = [f for f in all_families if f not in self.families]
        what = "all feature families" if not left else "without " + ", ".join(left)
        how = "coarser bins" if self.top is None else f"the strongest features at {self.top} bins"
        return f"{what}, {how}"


@dataclass(frozen=True)
class Choice:
    candidate: Candidate
    how: str  # the folds: time-forward or by a hash of the id
    scores: tuple[tuple[str, float], ...]  # each candidate and its mean validation ROC-AUC
    summary: str


def _bucket(key: str, n: int) -> int:
    return int.from_bytes(hashlib.sha256(f"fold:{key}".encode()).digest()[:8], "big") % n


def folds(
    times: npt.NDArray[Any] | None, keys: Sequence[str], n: int = FOLDS
) -> tuple[list[tuple[BoolArray, BoolArray]], str]:
    """(train, validation) masks and what they are. With times (cutoffs, or a CSV's time column): fold
    k validates on the rows from its split point to the next, of leads in bucket k (a hash of the id),
    and trains on the rows before the split point of the other leads; the split points are the last
    ``n`` cutoffs, or the 55/70/85 % quantiles of continuous times. Without times: hash buckets."""
    bucket = np.fromiter((_bucket(k, n) for k in keys), dtype=np.int64, count=len(keys))
    if times is not None:
        t = np.asarray(times, float)
        known = ~np.isnan(t)
        distinct = np.unique(t[known])
        if len(distinct) > n:
            splits = (distinct[-n:] if len(distinct) <= 20
                      else np.quantile(t[known], np.linspace(0.55, 0.85, n)))  # fmt: skip
            out = []
            for k, start in enumerate(splits):
                end = splits[k + 1] if k + 1 < n else np.inf
                val = known & (t >= start) & (t < end) & (bucket == k)
                out.append((known & (t < start) & (bucket != k), val))
            return (
                out,
                f"time-forward cross-validation ({n} folds: trained on earlier rows, measured on later rows of other leads)",
            )
    out = [(bucket != k, bucket == k) for k in range(n)]
    return out, f"{n}-fold cross-validation by a hash of the id (the rows have no times)"


def _pool(features: Sequence[Feature], families: tuple[str, ...]) -> list[int]:
    return [j for j, f in enumerate(features) if family(f) in families]


def _top(ranked: Sequence[tuple[int, int]], pool: list[int], max_rules: int) -> list[int]:
    """The strongest features of ``pool`` (``ranked``: position and rules written, strongest first)
    whose rules together fit the budget; a feature too costly for what is left is passed over."""
    inside = set(pool)
    out, used = [], 0
    for j, cost in ranked:
        if j in inside and used + cost <= max_rules:
            out.append(j)
            used += cost
    return out


def fit_candidate(
    X: npt.NDArray[Any],
    y: npt.NDArray[Any],
    groups: Sequence[Any] | None,
    features: Sequence[Feature],
    candidate: Candidate,
    ranked: dict[int, list[tuple[int, int]]],
    params: dict[str, Any],
    max_rules: int,
    columns: Sequence[Column] | None = None,
    earlier: Fitted | None = None,
) -> Fitted:
    """``ranked``: per number of bins, the features by strength with the rules each writes (``rank``);
    ``earlier``: as ``fit_within``'s (the coarser-bins candidate then settles its features without
    pairs first, as the full model did)."""
    pool = _pool(features, candidate.families)
    if candidate.top is None:
        # with the full model's rounds, its features settle as the full model's did (``fit_within``)
        settle = None if earlier is None else True
        return fit_within(X, y, groups, features, pool, params, max_rules, columns, earlier, settle)
    keep = _top(ranked[candidate.top], pool, max_rules)
    return fit_within(X, y, groups, features, keep, {**params, "max_bins": candidate.top}, max_rules, columns)


def rank(
    X: npt.NDArray[Any],
    y: npt.NDArray[Any],
    groups: Sequence[Any] | None,
    features: Sequence[Feature],
    params: dict[str, Any],
    columns: Sequence[Column] | None = None,
) -> dict[int, list[tuple[int, int]]]:
    """Per number of bins in ``TOP_BINS``: every feature worth points in a scorecard of all of them at
    that many bins, by the points it is worth (most first), with the rules it writes there. The scorecard
    takes no pairs: a pair's cells are not a feature's rules, the ranking is of the features, and the pair
    search (a crossing of every pair of attributes and a regression per pair) was two thirds of what ranking
    cost (``bench/README.md``)."""
    out = {}
    for bins in TOP_BINS:
        every = range(len(features))
        fitted = fit_within(X, y, groups, features, every, {**params, "max_bins": bins, "interactions": 0},
                            MAX_RULES, columns)  # fmt: skip
        sc = fitted.scorecard
        spans = [int(p.max() - p.min()) for p in sc.points_]
        costs = rules_per_feature(sc)
        order = sorted(range(len(fitted.keep)), key=lambda i: (-spans[i], sc.features_[i].name))
        out[bins] = [(fitted.keep[i], costs[i]) for i in order if spans[i] > 0 and costs[i]]
    return out


def choose(
    X: npt.NDArray[Any],
    y: npt.NDArray[Any],
    keys: Sequence[str],
    times: npt.NDArray[Any] | None,
    features: Sequence[Feature],
    params: dict[str, Any],
    max_rules: int,
    budget_binds: bool,
    columns: Sequence[Column] | None = None,
) -> Choice:
    """The candidate with the best mean validation ROC-AUC: first how to spend the budget (where it
    binds), with every family; then, with that, each event family left out in turn."""
    present = tuple(f for f in FAMILIES if any(family(x) == f for x in features))
    strategies = (
        [Candidate(present, None), *(Candidate(present, b) for b in TOP_BINS)] if budget_binds else []
    )
    droppable = [f for f in present if f != "attributes"] if len(present) > 1 else []
    split, how = folds(times, keys)
    fold_data = []
    for train, val in split:
        ytr, yva = y[train], y[val]
        if min(int(ytr.sum()), int(len(ytr) - ytr.sum())) < 10 or not 0 < int(yva.sum()) < len(yva):
            continue  # a fold without both classes measures nothing
        fold_data.append((train, val))
    if not fold_data or not (strategies or droppable):
        base = Candidate(present, None)
        why = "no fold has both outcomes" if not fold_data else "nothing to choose"
        return Choice(base, how, (), f"candidates: {why}; all feature families, coarser bins")
    fold_params = {**params, "min_class_count": 1}
    groups = list(keys)
    read_all = (
        columns
        if columns is not None
        else read_columns(X, features, params.get("placeholders", PLACEHOLDERS))
    )
    fold_columns = [[c[train] for c in read_all] for train, _ in fold_data]
    # the folds' columns are given to every fit: the matrix's rows only for their number
    rankings = [
        rank(stand_in(int(train.sum()), X.shape[1]), y[train], [groups[i] for i in np.flatnonzero(train)],
             features, fold_params, read)
        if strategies else {}
        for (train, _), read in zip(fold_data, fold_columns, strict=True)
    ]  # fmt: skip
    scores: dict[Candidate, float] = {}

    def score(c: Candidate) -> float:
        if c not in scores:
            aucs = []
            for (train, val), ranked, read in zip(fold_data, rankings, fold_columns, strict=True):
                try:
                    fitted = fit_candidate(stand_in(int(train.sum()), X.shape[1]), y[train],
                                           [groups[i] for i in np.flatnonzero(train)], features, c, ranked,
                                           fold_params, max_rules, read)  # fmt: skip
                except ValueError:  # nothing left to learn from (every feature left out)
                    aucs.append(0.5)
                    continue
                held = [read_all[j][val] for j in fitted.keep]
                scores_val = fitted.scorecard.decision_function(
                    stand_in(int(val.sum()), len(fitted.keep)), held
                )
                aucs.append(roc_auc(y[val], scores_val))
            scores[c] = float(np.mean(aucs))
        return scores[c]

    best = max(strategies, key=score) if strategies else Candidate(present, None)
    for f in droppable:
        c = Candidate(tuple(x for x in best.families if x != f), best.top)
        if score(c) > score(best):
            best = c
    table = tuple((c.describe(present), s) for c, s in scores.items())
    summary = f"candidate chosen by {how}: {best.describe(present)} (mean validation ROC-AUC {scores.get(best, float('nan')):.4f} of {len(scores)} candidates)"
    return Choice(best, how, table, summary)
