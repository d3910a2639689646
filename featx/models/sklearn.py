"""scikit-learn model builders (svm, ensemble, knn, random forest)."""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError, TrainingError

# ---------------------------------------------------------------------------
# scikit-learn baselines (imported lazily)


#: Most folds used to fit the svm's probability calibration.
CALIBRATION_FOLDS = 5


class CalibrationFolds:
    """Stratified folds for calibrating probabilities, as many as the rarest class allows.

    ``min(CALIBRATION_FOLDS, rows of the rarest class)`` folds, unshuffled (so a
    refit on the same rows gives the same model). A class with a single row
    cannot be calibrated: that is a :class:`~featx.errors.TrainingError`.
    """

    def _folds(self, y):
        from sklearn.model_selection import StratifiedKFold  # scikit-learn is heavy: imported on use

        labels, counts = np.unique(np.asarray(y), return_counts=True)
        if len(counts) and counts.min() < 2:
            rare = labels[int(counts.argmin())]
            rare = rare.item() if hasattr(rare, "item") else rare
            raise TrainingError(
                f"svm: calibrating its probabilities needs at least 2 training rows of every class; "
                f"class {rare!r} has 1 in this fold's training rows. Received: {len(np.asarray(y))} "
                "training rows; use fewer folds or more tracks of that genre"
            )
        return StratifiedKFold(n_splits=int(min(CALIBRATION_FOLDS, counts.min())))

    def split(self, X, y=None, groups=None):
        return self._folds(y).split(X, y)

    def get_n_splits(self, X=None, y=None, groups=None):
        return self._folds(y).get_n_splits() if y is not None else CALIBRATION_FOLDS


def calibrated_svc(*, C: float, gamma, kernel: str = "rbf", seed: int = 0):
    """One-vs-rest SVMs (``SVC``) whose probabilities are calibrated by temperature scaling.

    Each class gets its own binary SVM, so every decision value is a margin for
    that class (``SVC``'s own multi-class decision values are mostly vote
    counts). The temperature is fitted on out-of-fold decision values
    (:class:`CalibrationFolds`); the SVMs themselves are then fitted on all
    rows (``ensemble=False``). Scaling by one temperature leaves the argmax
    alone, so a reported probability is calibrated while the decision is the
    SVMs' own.
    """
    from sklearn.calibration import CalibratedClassifierCV  # scikit-learn is heavy: imported on use
    from sklearn.multiclass import OneVsRestClassifier  # scikit-learn is heavy: imported on use
    from sklearn.svm import SVC  # scikit-learn is heavy: imported on use

    svc = SVC(C=C, gamma=gamma, kernel=kernel, random_state=seed)
    return CalibratedClassifierCV(OneVsRestClassifier(svc), method="temperature",
                                  cv=CalibrationFolds(), ensemble=False)


def _gamma(gamma: str):
    try:
        return float(gamma)
    except ValueError:
        return gamma


def make_svm(*, seed: int = 0, C: float = 10.0, gamma: str = "scale", kernel: str = "rbf"):
    """Support-vector classifier (scikit-learn ``SVC``).

    One binary SVM per class; probabilities are calibrated (see
    :func:`calibrated_svc`), so a probability of 0.7 is right about 70% of
    the time on data like the training data.
    """
    return calibrated_svc(C=C, gamma=_gamma(gamma), kernel=kernel, seed=seed)


def make_ensemble(*, seed: int = 0, C: float = 10.0, gamma: str = "scale",
                  nn_units: tuple = (256, 128), nn_alpha: float = 0.1, logistic_C: float = 0.3,
                  svm_weight: float = 1.0, nn_weight: float = 1.0, logistic_weight: float = 1.0):
    """Soft vote of an RBF SVM, a small neural network and a logistic regression.

    The three see the data differently (a kernel machine, a non-linear network
    trained by gradient descent, a linear model), so their errors differ and
    the weighted mean of their class probabilities is steadier than any one of
    them. A weight of 0 leaves a member out.
    """
    from sklearn.ensemble import VotingClassifier  # scikit-learn is heavy: imported on use
    from sklearn.linear_model import LogisticRegression  # scikit-learn is heavy: imported on use
    from sklearn.neural_network import MLPClassifier  # scikit-learn is heavy: imported on use

    weights = {"svm_weight": svm_weight, "nn_weight": nn_weight, "logistic_weight": logistic_weight}
    bad = next((k for k, v in weights.items() if not v >= 0), None)
    if bad is not None:
        raise ConfigError(f"model 'ensemble': {bad} must be >= 0. Received: {bad}={weights[bad]}")
    if not any(weights.values()):
        raise ConfigError("model 'ensemble': every member weight is 0; expected at least one above 0")
    members = [
        ("svm", calibrated_svc(C=C, gamma=_gamma(gamma), seed=seed), svm_weight),
        ("nn", MLPClassifier(tuple(nn_units), alpha=nn_alpha, max_iter=1000, random_state=seed), nn_weight),
        ("logistic", LogisticRegression(C=logistic_C, max_iter=5000), logistic_weight),
    ]
    members = [m for m in members if m[2] > 0]
    return VotingClassifier([(name, est) for name, est, _ in members], voting="soft",
                            weights=[w for _, _, w in members])


def make_knn(*, seed: int = 0, n_neighbors: int = 5, weights: str = "uniform"):
    """k-nearest-neighbour classifier (Euclidean, on standardised features)."""
    from sklearn.neighbors import KNeighborsClassifier  # scikit-learn is heavy: imported on use

    del seed  # deterministic
    return KNeighborsClassifier(n_neighbors=n_neighbors, weights=weights)


def make_random_forest(*, seed: int = 0, n_estimators: int = 300, max_depth: int = 0,
                       min_samples_leaf: int = 1):
    """Random forest (``max_depth=0``: unlimited)."""
    from sklearn.ensemble import RandomForestClassifier  # scikit-learn is heavy: imported on use

    return RandomForestClassifier(
        n_estimators=n_estimators, max_depth=max_depth or None,
        min_samples_leaf=min_samples_leaf, random_state=seed, n_jobs=1,
    )
