"""scikit-learn model builders (svm, ensemble, knn, random forest)."""
from __future__ import annotations


import numpy as np

from ..errors import ConfigError


# ---------------------------------------------------------------------------
# scikit-learn baselines (imported lazily)


def _softmax_svc(**kwargs):
    """An ``SVC`` whose probabilities are the softmax of its one-vs-rest decision values."""
    from sklearn.svm import SVC

    class SoftmaxSVC(SVC):
        def predict_proba(self, X):
            d = self.decision_function(X)
            if d.ndim == 1:
                d = np.column_stack([-d, d])
            e = np.exp(d - d.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)

    return SoftmaxSVC(**kwargs)


def _gamma(gamma: str):
    try:
        return float(gamma)
    except ValueError:
        return gamma


def make_svm(*, seed: int = 0, C: float = 10.0, gamma: str = "scale", kernel: str = "rbf"):
    """Support-vector classifier (scikit-learn ``SVC``).

    Its probabilities are the softmax of the one-vs-rest decision values, so
    their argmax is the SVM's own decision (no extra calibration folds).
    """
    return _softmax_svc(C=C, gamma=_gamma(gamma), kernel=kernel, random_state=seed)


def make_ensemble(*, seed: int = 0, C: float = 10.0, gamma: str = "scale",
                  nn_units: tuple = (256, 128), nn_alpha: float = 0.1, logistic_C: float = 0.3,
                  svm_weight: float = 1.0, nn_weight: float = 1.0, logistic_weight: float = 1.0):
    """Soft vote of an RBF SVM, a small neural network and a logistic regression.

    The three see the data differently (a kernel machine, a non-linear network
    trained by gradient descent, a linear model), so their errors differ and
    the weighted mean of their class probabilities is steadier than any one of
    them. A weight of 0 leaves a member out.
    """
    from sklearn.ensemble import VotingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    weights = {"svm_weight": svm_weight, "nn_weight": nn_weight, "logistic_weight": logistic_weight}
    bad = next((k for k, v in weights.items() if not v >= 0), None)
    if bad is not None:
        raise ConfigError(f"model 'ensemble': {bad} must be >= 0. Received: {bad}={weights[bad]}")
    if not any(weights.values()):
        raise ConfigError("model 'ensemble': every member weight is 0; expected at least one above 0")
    members = [
        ("svm", _softmax_svc(C=C, gamma=_gamma(gamma), random_state=seed), svm_weight),
        ("nn", MLPClassifier(tuple(nn_units), alpha=nn_alpha, max_iter=1000, random_state=seed), nn_weight),
        ("logistic", LogisticRegression(C=logistic_C, max_iter=5000), logistic_weight),
    ]
    members = [m for m in members if m[2] > 0]
    return VotingClassifier([(name, est) for name, est, _ in members], voting="soft",
                            weights=[w for _, _, w in members])


def make_knn(*, seed: int = 0, n_neighbors: int = 5, weights: str = "uniform"):
    """k-nearest-neighbour classifier (Euclidean, on standardised features)."""
    from sklearn.neighbors import KNeighborsClassifier

    del seed  # deterministic
    return KNeighborsClassifier(n_neighbors=n_neighbors, weights=weights)


def make_random_forest(*, seed: int = 0, n_estimators: int = 300, max_depth: int = 0,
                       min_samples_leaf: int = 1):
    """Random forest (``max_depth=0``: unlimited)."""
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(
        n_estimators=n_estimators, max_depth=max_depth or None,
        min_samples_leaf=min_samples_leaf, random_state=seed, n_jobs=1,
    )
