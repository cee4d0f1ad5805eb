"""A calibrated estimate of each image's score, learnt on OOF predictions where the truth is known.

The score is what the leaderboard counts for the image under the submission's own decision: Dice
(binary; empty vs empty = 1) or mIoU (multi-class). The estimator is a ridge regression of the
log error ``t = log(1 - score + EPS)`` on the transformed quality features (``TRANSFORMS``), in
log space because an error twice as large is the same step at any level, and because the
features (band share, edge width, disagreement) scale the expected boundary error:
``t_hat = mean(t) + w . (x - mean(x))``. Back in score units the estimate is
``1 + EPS - smear * exp(t_hat)``, clipped to [0, 1], where ``smear`` (Duan's smearing factor, the
mean of ``exp(residual)`` on the fit) removes the bias of undoing the log, so the mean of the
estimates matches the mean score. Ridge, not trees: a test image far outside the OOF range (an
uncertain band ten times wider) must get a worse estimate, not the last leaf's.

The slopes ``w`` come from the variation inside groups (each feature and ``t`` minus its group's
mean) when groups of two or more images hold most rows: each OOF fold has its own model, and
models differ in how sharp they are for the same error, so across cars a wider band partly means
"another fold's model"; inside a car (one model, one paint, one studio) it means a harder view.
On the Carvana subset that lifts the cross-validated Spearman of a one-member ensemble from 0.30
to 0.45 (two members: 0.41 either way; ``bench/qa_calibration.py``). With one image per group the
slopes are fitted over all images.

Cross-validation is by group (``group_splits``: leave one group out up to ``MAX_SPLITS`` groups,
so no car is on both sides): the ridge penalty is chosen that way on the training images, and
``cross_validate`` gives every OOF image an estimate from a model that never saw its group, which
is what the calibration figures and the interval use. Leave-one-group-out rather than the model's
own folds: holding out a quarter of the groups moves the training mean away from the held-out
groups' level, and with the small spread of good models that shift alone reorders the pooled
estimates (on the Carvana subset, 4 folds of 3 cars: Spearman -0.30 and -0.01 against 0.45 and
0.41 leaving one car out, for the same features; the estimated mean stays within 0.0002 either way).

Each estimate comes with its drivers: a feature's contribution ``w_j (x_j - median_j)`` to the log
error, relative to the median OOF image; the largest positive ones are the reasons shown in QA.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr
from sklearn.linear_model import Ridge

from pipeline.errors import PipelineError

EPS = 1e-3
MAX_SPLITS = (
    20  # cross-validation splits of the groups (leave one group out below that many groups)
)
INNER_SPLITS = 5  # splits of the training groups that choose the ridge penalty
ALPHAS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
Z95 = 1.96
# feature (before ':<class>') -> (transform, floor); log(x + floor), log(1 - x + floor),
# log1p(|x|), as is
TRANSFORMS = {
    "area": ("log", 1e-4),
    "band": ("log", 1e-3),
    "band_wide": ("log", 1e-3),
    "band_far": ("log", 1e-3),
    "removed": ("log", 1e-3),
    "disagreement": ("log", 1e-3),
    "soft_dice": ("log1m", 1e-4),
    "edge_width": ("log", 0.1),
    "components": ("log", 1.0),
    "area_z": ("log1p_abs", 0.0),
    "empty": ("id", 0.0),
}


def transform(name: str, values: np.ndarray) -> np.ndarray:
    """The column the regression sees for feature ``name``
    (``TRANSFORMS``; unknown names as they are)."""
    kind, floor = TRANSFORMS.get(name.split(":")[0].split("/")[-1], ("id", 0.0))
    values = np.asarray(values, np.float64)
    if kind == "log":
        return np.log(np.maximum(values, 0.0) + floor)
    if kind == "log1m":
        return np.log(np.maximum(1.0 - values, 0.0) + floor)
    if kind == "log1p_abs":
        return np.log1p(np.abs(values))
    return values


def log_error(scores: np.ndarray) -> np.ndarray:
    return np.log(np.clip(1.0 - np.asarray(scores, np.float64), 0.0, 1.0) + EPS)


def matrix(rows: list[dict[str, float]], columns: list[str]) -> np.ndarray:
    """(N, len(columns)) transformed features; a feature a row lacks is an error."""
    for name in columns:
        missing = [i for i, r in enumerate(rows) if name not in r]
        if missing:
            raise PipelineError(
                f"quality feature '{name}' missing for {len(missing)} images; rerun 'pipeline qa'"
            )
    return (
        np.column_stack([transform(c, [r[c] for r in rows]) for c in columns])
        if columns
        else np.zeros((len(rows), 0))
    )


@dataclass
class Estimator:
    """A fitted estimator: ``t_hat = intercept + weights . (x - center)`` on transformed
    features."""

    columns: list[str]
    center: np.ndarray
    weights: np.ndarray
    intercept: float
    smear: float
    alpha: float
    typical: dict[str, float]  # OOF median of each raw feature, for reasons
    reference: (
        np.ndarray
    )  # OOF median of each transformed column: contributions are measured from it
    within: bool  # slopes fitted on the variation inside groups

    def log_errors(self, rows: list[dict[str, float]]) -> np.ndarray:
        return self.intercept + (matrix(rows, self.columns) - self.center) @ self.weights

    def predict(self, rows: list[dict[str, float]]) -> np.ndarray:
        """Estimated scores in [0, 1]."""
        return np.clip(1.0 + EPS - self.smear * np.exp(self.log_errors(rows)), 0.0, 1.0)

    def contributions(self, row: dict[str, float]) -> dict[str, float]:
        """Each feature's push on the log error against the median OOF image (> 0: more error)."""
        x = matrix([row], self.columns)[0]
        return {
            c: float(w * (v - m))
            for c, w, v, m in zip(self.columns, self.weights, x, self.reference, strict=True)
        }

    def to_json(self) -> dict:
        return {
            "model": "ridge on transformed features -> log(1 - score + eps)",
            "eps": EPS,
            "alpha": self.alpha,
            "slopes": "within groups" if self.within else "over all images",
            "intercept": self.intercept,
            "smear": self.smear,
            "features": {
                c: {
                    "weight": float(w),
                    "oof_median": self.typical[c],
                    "transform": TRANSFORMS.get(c.split(":")[0].split("/")[-1], ("id", 0.0))[0],
                }
                for c, w in zip(self.columns, self.weights, strict=True)
            },
        }


def usable_columns(rows: list[dict[str, float]]) -> list[str]:
    """Features every row has and that vary over the rows
    (a one-member ensemble has no disagreement)."""
    names = sorted(set.intersection(*(set(r) for r in rows))) if rows else []
    z = matrix(rows, names)
    return [n for n, col in zip(names, z.T, strict=True) if np.ptp(col) > 1e-9]


def within_groups(groups: list[str]) -> bool:
    """Fit slopes inside groups when groups of >= 2 images hold at least half of the rows."""
    counts = Counter(groups)
    return 2 * sum(n for n in counts.values() if n >= 2) >= len(groups)


def centered(a: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """``a`` (rows first) minus its mean over each group (``groups``), or over all rows (None)."""
    a = np.asarray(a, np.float64)
    if groups is None:
        return a - a.mean(axis=0)
    out = a.copy()
    for g in np.unique(groups):
        out[groups == g] -= out[groups == g].mean(axis=0)
    return out


def _ridge(
    z: np.ndarray, t: np.ndarray, alpha: float, groups: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, float]:
    """(center, weights in transformed units, intercept): ridge slopes on standardised deviations
    from the group means (``groups``) or the overall mean (None);
    ``t_hat = mean(t) + w . (x - mean(x))``."""
    center, intercept = z.mean(axis=0), float(np.mean(t))
    if z.shape[1] == 0:  # nothing varies: the estimate is the mean log error
        return center, np.zeros(0), intercept
    zc, tc = centered(z, groups), centered(t, groups)
    scale = zc.std(axis=0)
    scale[scale == 0] = 1.0
    model = Ridge(alpha=alpha, fit_intercept=False).fit(zc / scale, tc)
    return center, model.coef_ / scale, intercept


def _cv_error(
    z: np.ndarray, t: np.ndarray, splits: np.ndarray, alpha: float, groups: np.ndarray | None
) -> float:
    """Squared error of the slopes on held-out splits,
    on deviations from the held-out groups' own means."""
    err = 0.0
    for k in np.unique(splits):
        train = splits != k
        _, w, _ = _ridge(z[train], t[train], alpha, None if groups is None else groups[train])
        held = None if groups is None else groups[~train]
        err += float(np.sum((centered(t[~train], held) - centered(z[~train], held) @ w) ** 2))
    return err


def group_splits(groups: list[str], k: int) -> np.ndarray:
    """Split index of each row: the sorted distinct groups dealt round-robin into ``min(k, groups)``
    splits."""
    names = sorted(set(groups))
    index = {g: i % max(1, min(k, len(names))) for i, g in enumerate(names)}
    return np.array([index[g] for g in groups])


def choose_alpha(
    z: np.ndarray, t: np.ndarray, splits: np.ndarray, groups: np.ndarray | None
) -> float:
    """The ridge penalty with the least squared error across ``splits``
    (the middle one if < 2 splits)."""
    if len(np.unique(splits)) < 2 or z.shape[1] == 0:
        return ALPHAS[len(ALPHAS) // 2]
    errors = [_cv_error(z, t, splits, a, groups) for a in ALPHAS]
    return ALPHAS[int(np.argmin(errors))]


def fit(
    rows: list[dict[str, float]],
    scores: np.ndarray,
    groups: list[str],
    columns: list[str] | None = None,
) -> Estimator:
    """Fit on OOF rows (features), their true ``scores`` and ``groups``
    (the penalty is chosen by group CV)."""
    if len(rows) < 2:
        raise PipelineError(
            f"{len(rows)} OOF images are too few to calibrate the QA estimate; need >= 2"
        )
    columns = usable_columns(rows) if columns is None else columns
    z, t = matrix(rows, columns), log_error(scores)
    by = np.asarray(groups) if within_groups(list(groups)) else None
    alpha = choose_alpha(z, t, group_splits(list(groups), INNER_SPLITS), by)
    center, weights, intercept = _ridge(z, t, alpha, by)
    residual = t - intercept - (z - center) @ weights
    typical = {c: float(np.median([r[c] for r in rows])) for c in columns}
    return Estimator(
        columns,
        center,
        weights,
        intercept,
        float(np.mean(np.exp(residual))),
        alpha,
        typical,
        np.median(z, axis=0),
        by is not None,
    )


def cross_validate(
    rows: list[dict[str, float]], scores: np.ndarray, groups: list[str], k: int = MAX_SPLITS
) -> np.ndarray:
    """Each row's estimate from an estimator fitted on the other groups' rows (``group_splits``)."""
    groups, scores = list(groups), np.asarray(scores, np.float64)
    splits = group_splits(groups, k)
    if len(np.unique(splits)) < 2:
        raise PipelineError(
            "the QA estimate needs OOF images of at least 2 groups to cross-validate"
        )
    out = np.zeros(len(rows))
    for k in np.unique(splits):
        train = np.flatnonzero(splits != k)
        model = fit([rows[i] for i in train], scores[train], [groups[i] for i in train])
        test = np.flatnonzero(splits == k)
        out[test] = model.predict([rows[i] for i in test])
    return out


def group_means(values: np.ndarray, groups: list[str]) -> dict[str, float]:
    groups_arr = np.asarray(groups)
    return {g: float(np.mean(values[groups_arr == g])) for g in dict.fromkeys(groups)}


def calibration(truth: np.ndarray, estimate: np.ndarray, groups: list[str]) -> dict:
    """How well cross-validated estimates track the truth on OOF.

    ``spearman`` (estimate vs true score, images), ``true_mean``/``estimated_mean``,
    ``group_residual_sd`` (spread of the per-group mean of truth - estimate), ``groups``,
    ``worst_group`` (lowest true mean) and ``worst_group_in_top10``
    (share of its images among the 10% ranked lowest by the estimate).
    """
    truth, estimate = np.asarray(truth, np.float64), np.asarray(estimate, np.float64)
    residual = group_means(truth - estimate, groups)
    true_by_group = group_means(truth, groups)
    worst = min(true_by_group, key=true_by_group.get)
    order = np.argsort(estimate, kind="stable")
    top = set(order[: max(1, int(np.ceil(0.1 * len(order))))].tolist())
    members = [i for i, g in enumerate(groups) if g == worst]
    rho = (
        spearmanr(estimate, truth)[0]
        if np.ptp(estimate) > 0 and np.ptp(truth) > 0
        else float("nan")
    )
    return {
        "images": len(truth),
        "groups": len(residual),
        "spearman": float(rho),
        "true_mean": float(truth.mean()),
        "estimated_mean": float(estimate.mean()),
        "group_residual_sd": float(np.std(list(residual.values()))),
        "worst_group": worst,
        "worst_group_true": true_by_group[worst],
        "worst_group_in_top10": sum(i in top for i in members) / len(members),
    }


def leaderboard(
    estimates: np.ndarray, test_groups: int, residual_sd: float, oof_groups: int
) -> dict:
    """Mean of the test estimates with a 95% interval.

    The test mean misses the truth by the mean residual of its groups (images of one group err
    together), plus the calibration's own uncertainty: half-width
    ``1.96 * sd_group * sqrt(1 / test_groups + 1 / oof_groups)``, ``sd_group`` from the
    cross-validated OOF residuals. It does not cover a test set unlike the OOF images.
    """
    mean = float(np.mean(estimates))
    half = Z95 * residual_sd * float(np.sqrt(1.0 / max(test_groups, 1) + 1.0 / max(oof_groups, 1)))
    return {
        "mean": mean,
        "half_width": half,
        "low": max(mean - half, 0.0),
        "high": min(mean + half, 1.0),
        "images": int(len(estimates)),
        "groups": int(test_groups),
    }
