"""scikit-learn models as plain arrays, and their probabilities computed with NumPy alone.

Importing scikit-learn costs about a second (SciPy's statistics, its array API layer),
more than classifying a 30-s clip. A fitted svm, knn, random forest, ensemble or
logistic model only needs a few matrix products at prediction time, so when it is
saved featx also writes its fitted state as arrays (:func:`export`), checks on the
model's own check rows that :func:`predict_proba` here gives scikit-learn's
probabilities (to 1e-9), and prediction then runs without importing scikit-learn.
Any estimator not covered here, or one whose arrays disagree, is simply predicted
by scikit-learn.

Covered: ``SVC`` (rbf, linear, poly and sigmoid kernels) inside ``OneVsRestClassifier``
inside a temperature-scaled ``CalibratedClassifierCV``; ``KNeighborsClassifier``
(Euclidean, uniform or distance weights, brute force); ``RandomForestClassifier``;
``MLPClassifier``; ``LogisticRegression``; a soft ``VotingClassifier`` of those; and a
multi-label ``OneVsRestClassifier`` around any of them.
"""
from __future__ import annotations

import json

import numpy as np

__all__ = ["Unsupported", "export", "predict_proba", "check_tree", "to_arrays", "from_arrays"]


class Unsupported(Exception):
    """A fitted estimator this module cannot describe as arrays."""


# ---------------------------------------------------------------------------
# export: a tree of plain nodes (JSON) whose arrays are kept apart


def _node(kind: str, **fields) -> dict:
    return {"type": kind, **fields}


def _labels_disagree_on_equal_rows(X: np.ndarray, y: np.ndarray) -> bool:
    """Whether two equal rows of ``X`` carry different labels ``y``."""
    _, group = np.unique(X, axis=0, return_inverse=True)
    group = group.ravel()
    if group.max(initial=-1) + 1 == len(X):
        return False
    order = np.lexsort((y, group))
    same_group = group[order][1:] == group[order][:-1]
    return bool(np.any(same_group & (y[order][1:] != y[order][:-1])))


def export(estimator) -> dict:
    """The fitted ``estimator`` as a tree of nodes holding NumPy arrays.

    Raises
    ------
    Unsupported
        The estimator (or one inside it) is of a kind this module does not cover.
    """
    name = type(estimator).__name__
    if name == "_CalibratedClassifier":
        if estimator.method != "temperature":
            raise Unsupported(f"calibration {estimator.method!r}")
        return _node("temperature", base=export(estimator.estimator),
                     beta=float(estimator.calibrators[0].beta_), n_classes=int(len(estimator.classes)))
    if name == "CalibratedClassifierCV":
        if len(estimator.calibrated_classifiers_) != 1:
            raise Unsupported("an ensemble of calibrated classifiers")
        return _node("calibrated", inner=export(estimator.calibrated_classifiers_[0]),
                     classes=np.asarray(estimator.classes_))
    if name == "OneVsRestClassifier":
        members = [export(e) for e in estimator.estimators_]
        return _node("ovr", members=members, multilabel=bool(estimator.label_binarizer_.y_type_ == "multilabel-indicator"),
                     classes=np.asarray(estimator.classes_))
    if name == "_ConstantPredictor":
        return _node("constant", y=np.asarray(estimator.y_, dtype=np.float64).ravel())
    if name == "SVC":
        if estimator.kernel not in ("rbf", "linear", "poly", "sigmoid") or len(estimator.classes_) != 2:
            raise Unsupported(f"SVC kernel {estimator.kernel!r} with {len(estimator.classes_)} classes")
        return _node("svc", kernel=estimator.kernel, gamma=float(estimator._gamma), coef0=float(estimator.coef0),
                     degree=int(estimator.degree), sv=np.asarray(estimator.support_vectors_, dtype=np.float64),
                     dual=np.asarray(estimator.dual_coef_, dtype=np.float64).ravel(),
                     intercept=float(np.asarray(estimator.intercept_).ravel()[0]))
    if name == "KNeighborsClassifier":
        if estimator.effective_metric_ != "euclidean" or estimator.outputs_2d_:
            raise Unsupported(f"knn metric {estimator.effective_metric_!r}")
        if estimator.weights not in ("uniform", "distance"):
            raise Unsupported("knn weights")
        if _labels_disagree_on_equal_rows(np.asarray(estimator._fit_X), np.asarray(estimator._y)):
            # equal rows are equally near every query: which of them scikit-learn counts
            # among the k nearest follows its own search order, which arrays cannot repeat
            raise Unsupported("knn with equal training rows of different classes")
        return _node("knn", X=np.asarray(estimator._fit_X, dtype=np.float64), y=np.asarray(estimator._y),
                     k=int(estimator.n_neighbors), weights=estimator.weights, n_classes=int(len(estimator.classes_)))
    if name == "RandomForestClassifier":
        if estimator.n_outputs_ != 1:
            raise Unsupported("a forest of several outputs")
        # every tree's nodes in one set of arrays (children renumbered), walked all at once
        parts, roots, offset = [], [], 0
        for tree in estimator.estimators_:
            t = tree.tree_
            values = np.asarray(t.value[:, 0, :], dtype=np.float64)
            left, right = np.asarray(t.children_left, dtype=np.int64), np.asarray(t.children_right, dtype=np.int64)
            inner = left != -1
            parts.append((np.where(inner, left + offset, -1), np.where(inner, right + offset, -1),
                          np.asarray(t.feature, dtype=np.int64), np.asarray(t.threshold, dtype=np.float64),
                          values / np.maximum(values.sum(axis=1, keepdims=True), 1e-300)))
            roots.append(offset)
            offset += len(left)
        left, right, feature, threshold, value = (np.concatenate(a) for a in zip(*parts))
        return _node("forest", roots=np.asarray(roots, dtype=np.int64), left=left, right=right, feature=feature,
                     threshold=threshold, value=value)
    if name == "MLPClassifier":
        if estimator.activation not in ("relu", "tanh", "logistic", "identity"):
            raise Unsupported(f"MLP activation {estimator.activation!r}")
        # in the dtype fitted (float32 rows give float32 weights, and scikit-learn computes in it)
        return _node("mlp", weights=[np.asarray(w) for w in estimator.coefs_],
                     biases=[np.asarray(b) for b in estimator.intercepts_],
                     activation=estimator.activation, out=estimator.out_activation_)
    if name == "LogisticRegression":
        return _node("logistic", coef=np.asarray(estimator.coef_), intercept=np.asarray(estimator.intercept_),
                     n_classes=int(len(estimator.classes_)))
    if name == "VotingClassifier":
        if estimator.voting != "soft":
            raise Unsupported("hard voting")
        weights = estimator._weights_not_none
        return _node("vote", members=[export(e) for e in estimator.estimators_],
                     weights=np.asarray(weights if weights is not None else [1.0] * len(estimator.estimators_),
                                        dtype=np.float64))
    raise Unsupported(name)


# ---------------------------------------------------------------------------
# predicting from a tree of nodes


def _sq_distances(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    d = (X * X).sum(axis=1)[:, None] + (Y * Y).sum(axis=1)[None, :] - 2.0 * (X @ Y.T)
    return np.maximum(d, 0.0)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _nearest(d: np.ndarray, k: int) -> np.ndarray:
    """The columns of each row's ``k`` smallest values, as a stable sort's first ``k``
    would pick them (among equal values, the lower column first), in column order.

    A partition finds each row's k-th value in linear time; a full sort of every row
    against all training rows cost five times scikit-learn's own prediction.
    """
    if k >= d.shape[1]:
        return np.broadcast_to(np.arange(d.shape[1]), d.shape)
    kth = np.partition(d, k - 1, axis=1)[:, k - 1:k]
    chosen = d <= kth
    over = np.flatnonzero(chosen.sum(axis=1) > k)  # rows where values tie with the k-th
    if len(over):  # of those ties, the lowest columns fill what the smaller values leave
        sub, edge = d[over], kth[over]
        tied = sub == edge
        room = k - (sub < edge).sum(axis=1, keepdims=True)
        chosen[over] = (sub < edge) | (tied & (np.cumsum(tied, axis=1) <= room))
    return np.nonzero(chosen)[1].reshape(len(d), k)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _decision(node: dict, X: np.ndarray) -> np.ndarray:
    """A binary member's decision values (n,), or an OvR's (n, classes)."""
    kind = node["type"]
    if kind == "svc":
        X = X.astype(np.float64, copy=False)  # libsvm computes in float64
        sv, g = node["sv"], node["gamma"]
        if node["kernel"] == "rbf":
            K = np.exp(-g * _sq_distances(X, sv))
        elif node["kernel"] == "linear":
            K = X @ sv.T
        elif node["kernel"] == "poly":
            K = (g * (X @ sv.T) + node["coef0"]) ** node["degree"]
        else:  # sigmoid
            K = np.tanh(g * (X @ sv.T) + node["coef0"])
        return K @ node["dual"] + node["intercept"]
    if kind == "ovr":
        return np.column_stack([_decision(m, X) if m["type"] != "constant" else
                                np.full(len(X), m["y"][0]) for m in node["members"]])
    raise Unsupported(f"decision values of {kind}")


def _proba(node: dict, X: np.ndarray) -> np.ndarray:
    kind = node["type"]
    if kind == "calibrated":
        return _proba(node["inner"], X)
    if kind == "temperature":
        d = _decision(node["base"], X)
        if d.ndim == 1 or d.shape[1] == 1:  # binary: logits (-x, x)
            d = d.reshape(-1, 1)
            d = np.hstack([-d, d])
        proba = _softmax(node["beta"] * d)
        proba[(1.0 < proba) & (proba <= 1.0 + 1e-5)] = 1.0
        return proba
    if kind == "ovr":
        if not node["multilabel"]:
            raise Unsupported("single-label one-vs-rest probabilities")
        columns = [np.full(len(X), m["y"][0]) if m["type"] == "constant" else _proba(m, X)[:, 1]
                   for m in node["members"]]
        return np.column_stack(columns)
    if kind == "knn":
        d = _sq_distances(X.astype(np.float64, copy=False), node["X"])
        k = node["k"]
        nearest = _nearest(d, k)
        votes = np.zeros((len(X), node["n_classes"]))
        if node["weights"] == "uniform":
            w = np.ones((len(X), k))
        else:
            dist = np.sqrt(np.take_along_axis(d, nearest, axis=1))
            with np.errstate(divide="ignore"):
                w = 1.0 / dist
            exact = np.isinf(w)
            w[exact.any(axis=1)] = exact[exact.any(axis=1)].astype(float)
        labels = node["y"][nearest]
        for j in range(k):
            np.add.at(votes, (np.arange(len(X)), labels[:, j]), w[:, j])
        total = votes.sum(axis=1, keepdims=True)
        total[total == 0] = 1.0
        return votes / total
    if kind == "forest":
        X = X.astype(np.float32, copy=False)  # scikit-learn's trees compare float32 features
        left, right, feature, threshold = node["left"], node["right"], node["feature"], node["threshold"]
        at = np.broadcast_to(node["roots"], (len(X), len(node["roots"]))).copy()  # (rows, trees)
        rows = np.arange(len(X))[:, None]
        for _ in range(len(left)):  # a path visits each node at most once
            inner = left[at] != -1
            if not inner.any():
                break
            go_left = X[rows, np.where(inner, feature[at], 0)] <= threshold[at]
            at = np.where(inner, np.where(go_left, left[at], right[at]), at)
        return node["value"][at].mean(axis=1)
    if kind == "mlp":
        h = X
        act = {"relu": lambda z: np.maximum(z, 0.0), "tanh": np.tanh, "logistic": _sigmoid,
               "identity": lambda z: z}[node["activation"]]
        for i, (w, b) in enumerate(zip(node["weights"], node["biases"])):
            h = h @ w + b
            if i < len(node["weights"]) - 1:
                h = act(h)
        if node["out"] == "softmax":
            return _softmax(h)
        p = _sigmoid(h).ravel()
        return np.column_stack([1.0 - p, p])
    if kind == "logistic":
        z = X @ node["coef"].T + node["intercept"]
        if node["n_classes"] == 2:
            p = _sigmoid(z.ravel())
            return np.column_stack([1.0 - p, p])
        return _softmax(z)
    if kind == "vote":
        weights = node["weights"]
        return sum(w * _proba(m, X) for w, m in zip(weights, node["members"])) / weights.sum()
    if kind == "constant":
        return np.column_stack([1.0 - node["y"][0], np.full(len(X), node["y"][0])])
    raise Unsupported(kind)


_NODE_ARRAYS = {"svc": ("sv", "dual"), "knn": ("X", "y"), "forest": ("roots", "left", "right", "feature", "threshold", "value"),
                "logistic": ("coef", "intercept"), "vote": ("weights",), "constant": ("y",), "calibrated": ("classes",),
                "ovr": ("classes",)}


def check_tree(tree: dict, n_features: int) -> None:
    """Check that a stored tree is one :func:`export` could have written for ``n_features`` columns.

    Raises
    ------
    ValueError
        A node of an unknown type, an array of the wrong kind or shape, or an index
        (a tree's child or feature, a neighbour's label) out of range.
    """
    def need(ok, what):
        if not ok:
            raise ValueError(what)

    def walk(node, width):
        if not (isinstance(node, dict) and node.get("type") in _KINDS):
            raise ValueError(f"unknown node {str(node.get('type') if isinstance(node, dict) else node)[:40]!r}")
        kind = node["type"]
        for key in _NODE_ARRAYS.get(kind, ()):
            need(isinstance(node.get(key), np.ndarray), f"{kind} node: {key} is not an array")
        if kind == "svc":
            need(node["sv"].ndim == 2 and node["sv"].shape[1] == width and node["dual"].shape == (len(node["sv"]),),
                 "svc node: support vectors and coefficients do not match")
        elif kind == "knn":
            need(node["X"].ndim == 2 and node["X"].shape[1] == width and node["y"].shape == (len(node["X"]),)
                 and 1 <= node["k"] <= len(node["X"]) and np.issubdtype(node["y"].dtype, np.integer)
                 and node["y"].min() >= 0 and node["y"].max() < node["n_classes"], "knn node: inconsistent arrays")
        elif kind == "forest":
            n = len(node["left"])
            ints = all(np.issubdtype(node[k].dtype, np.integer) for k in ("roots", "left", "right", "feature"))
            need(ints and n > 0 and len(node["roots"]) > 0
                 and all(node[k].shape == (n,) for k in ("left", "right", "feature", "threshold"))
                 and node["value"].ndim == 2 and len(node["value"]) == n, "forest node: arrays of different lengths")
            inner = node["left"] != -1
            need(np.all((node["roots"] >= 0) & (node["roots"] < n)) and np.all(
                (node["left"][inner] >= 0) & (node["left"][inner] < n) & (node["right"][inner] >= 0)
                & (node["right"][inner] < n) & (node["feature"][inner] >= 0) & (node["feature"][inner] < width)),
                 "forest node: a root, child or feature index out of range")
            need(_is_forest(node["roots"], node["left"], node["right"]),
                 "forest node: the children do not form trees (a node with two parents, a cycle, "
                 "or a node no root reaches)")
        elif kind == "mlp":
            shapes = [(w.shape, b.shape) for w, b in zip(node["weights"], node["biases"])]
            need(shapes and all(isinstance(w, np.ndarray) for w in node["weights"] + node["biases"]),
                 "mlp node: no layers")
            prev = width
            for (ws, bs) in shapes:
                need(len(ws) == 2 and ws[0] == prev and bs == (ws[1],), "mlp node: layer shapes do not chain")
                prev = ws[1]
        elif kind == "logistic":
            need(node["coef"].ndim == 2 and node["coef"].shape[1] == width, "logistic node: wrong coefficient shape")
        elif kind in ("vote", "ovr"):
            need(len(node["members"]) > 0, f"{kind} node: no members")
            for m in node["members"]:
                walk(m, width)
        elif kind == "calibrated":
            walk(node["inner"], width)
        elif kind == "temperature":
            walk(node["base"], width)

    walk(tree, n_features)


def _is_forest(roots: np.ndarray, left: np.ndarray, right: np.ndarray) -> bool:
    """Whether ``left``/``right`` (``-1`` at a leaf) make trees under ``roots``: every node
    has exactly one parent but a root, which has none, and every node is reached from a
    root. Then a walk from a root meets a leaf after at most the tree's depth in steps."""
    n = len(left)
    inner = left != -1
    if np.any(right[~inner] != -1):
        return False
    children = np.concatenate([left[inner], right[inner]])
    parents = np.bincount(np.concatenate([children, roots]), minlength=n)
    if np.any(parents != 1):
        return False
    seen, frontier = len(roots), roots
    while len(frontier):  # one level of every tree per step
        below = inner[frontier]
        frontier = np.concatenate([left[frontier[below]], right[frontier[below]]])
        seen += len(frontier)
        if seen > n:
            return False
    return seen == n


_KINDS = frozenset({"svc", "knn", "forest", "mlp", "logistic", "vote", "ovr", "calibrated",
                    "temperature", "constant"})


#: How many numbers one batch of rows may make per row-by-reference matrix (a knn's
#: distances to its training rows, an svm's kernel against its support vectors): 2^22
#: float64s, 32 MiB, so that a table of any length is predicted in bounded memory, as
#: scikit-learn's own chunked distances are.
BATCH_ELEMENTS = 2 ** 22


def _widest(node) -> int:
    """The most numbers one row makes in any node's matrix: a knn's training rows, an
    svm's support vectors, a forest's trees, a network's widest layer."""
    if isinstance(node, list):
        return max((_widest(m) for m in node), default=1)
    if not isinstance(node, dict):
        return 1
    kind = node.get("type")
    own = 1
    if kind == "knn":
        own = len(node["X"])
    elif kind == "svc":
        own = len(node["sv"])
    elif kind == "forest":
        own = len(node["roots"])
    elif kind == "mlp":
        own = max((w.shape[-1] for w in node["weights"]), default=1)
    elif kind == "logistic":
        own = len(node["coef"])
    return max([own] + [_widest(v) for v in node.values() if isinstance(v, (dict, list))])


def predict_proba(tree: dict, X) -> np.ndarray:
    """Class probabilities of the exported estimator for rows ``X`` (as its ``predict_proba``).

    Rows are predicted in batches whose matrices hold at most :data:`BATCH_ELEMENTS`
    numbers each, so memory does not grow with the number of rows.
    """
    X = np.asarray(X)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    step = max(1, BATCH_ELEMENTS // max(1, _widest(tree)))
    if len(X) <= step:
        return _proba(tree, X)
    return np.concatenate([_proba(tree, X[start:start + step]) for start in range(0, len(X), step)])


# ---------------------------------------------------------------------------
# storing a tree: a JSON skeleton and its arrays


def to_arrays(tree: dict) -> dict[str, np.ndarray]:
    """The tree as arrays for ``np.savez``: every array under a path key, the skeleton as JSON."""
    arrays: dict[str, np.ndarray] = {}

    def strip(value, path):
        if isinstance(value, np.ndarray):
            key = f"a{len(arrays)}"
            arrays[key] = value
            return {"$array": key}
        if isinstance(value, dict):
            return {k: strip(v, f"{path}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, (np.generic,)):
            return value.item()
        return value

    skeleton = strip(tree, "")
    arrays["skeleton"] = np.frombuffer(json.dumps(skeleton).encode(), dtype=np.uint8)
    return arrays


def from_arrays(arrays) -> dict:
    """The tree :func:`to_arrays` stored (``arrays``: a mapping such as an open ``.npz``).

    Raises
    ------
    ValueError
        The skeleton is not valid JSON or names an array that is missing.
    """
    skeleton = json.loads(bytes(np.asarray(arrays["skeleton"], dtype=np.uint8)).decode())

    def fill(value):
        if isinstance(value, dict):
            if set(value) == {"$array"}:
                return np.asarray(arrays[value["$array"]])
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    return fill(skeleton)
