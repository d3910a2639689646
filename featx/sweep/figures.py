"""A sweep's study figures: optimisation history, parallel coordinates, hyperparameter
importance and the split of trials by state, drawn from ``results.csv``'s frame."""
from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..reporting.figures import new_figure, save_figure
from ..training.config import LOWER_IS_BETTER

logger = logging.getLogger(__name__)

#: Colours of the trial states in the figures.
_COLOURS = {"COMPLETE": "tab:blue", "PRUNED": "tab:orange", "FAIL": "tab:red", "RUNNING": "tab:gray",
            "WAITING": "tab:gray"}


def importances(frame: pd.DataFrame, names: list[str], metric: str) -> dict[str, float]:
    """Optuna's PED-ANOVA importance of each varied hyperparameter for ``metric`` (finished trials).

    The finished trials are copied into an in-memory study whose distributions list every
    value seen, so text and tuple values count as well as numbers. Empty with fewer than
    four finished trials or nothing varied.
    """
    import optuna  # Optuna is heavy: only for a report

    ok = frame[frame["status"] == "ok"]
    varied = [n for n in names if ok[n].nunique() > 1]
    if len(ok) < 4 or not varied:
        return {}
    dists = {n: optuna.distributions.CategoricalDistribution(sorted(map(str, ok[n].unique())))
             for n in varied}
    lower = metric in LOWER_IS_BETTER
    study = optuna.create_study(direction="minimize" if lower else "maximize")
    study.add_trials([optuna.trial.create_trial(params={n: str(r[n]) for n in varied}, distributions=dists,
                                                value=float(r[metric])) for _, r in ok.iterrows()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the evaluator is marked experimental
        try:
            return optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
        except (RuntimeError, ValueError) as exc:  # e.g. every trial scored the same
            logger.info("hyperparameter importance not computed: %s", exc)
            return {}


def study_figures(frame: pd.DataFrame, names: list[str], metric: str, directory: Path) -> list[Path]:
    """``optimisation_history.png``, ``parallel_coordinates.png``, ``importance.png`` and
    ``trial_states.png`` in ``directory`` (each only when there is something to draw)."""
    written = []
    order = frame.copy()
    order["number"] = pd.to_numeric(order["trial"].astype(str).str.rsplit("-", n=1).str[-1],
                                    errors="coerce")
    if order["number"].isna().any():  # grid and random: the order of the combinations
        order["number"] = np.arange(len(order))
    order = order.sort_values("number", kind="stable")
    ok = order[order["status"] == "ok"]
    lower = metric in LOWER_IS_BETTER
    if len(ok):
        fig, ax = new_figure(6.4, 3.8)
        ax.scatter(ok["number"], ok[metric], s=18, color=_COLOURS["COMPLETE"], label="complete")
        best = ok[metric].cummin() if lower else ok[metric].cummax()
        ax.step(ok["number"], best, where="post", color="black", lw=1.2, label="best so far")
        pruned = order[order["status"] == "pruned"]
        if len(pruned):
            y = np.full(len(pruned), ok[metric].min() if not lower else ok[metric].max())
            ax.scatter(pruned["number"], y, marker="x", color=_COLOURS["PRUNED"], label="pruned (no score)")
        ax.set_xlabel("trial")
        ax.set_ylabel(f"validation {metric}")
        ax.set_title("Optimisation history")
        ax.legend(fontsize=8)
        written.append(save_figure(fig, directory / "optimisation_history.png", dpi=90))
    varied = [n for n in names if ok[n].nunique() > 1] if len(ok) else []
    if len(ok) >= 2 and varied:
        written.append(_parallel_coordinates(ok, varied, metric, directory))
    imp = importances(frame, names, metric)
    if imp:
        fig, ax = new_figure(5.6, 0.5 + 0.45 * len(imp))
        items = sorted(imp.items(), key=lambda kv: kv[1])
        ax.barh([k for k, _ in items], [v for _, v in items], color="tab:blue")
        ax.set_xlabel("importance (PED-ANOVA, Optuna)")
        ax.set_title(f"Hyperparameter importance for {metric}")
        written.append(save_figure(fig, directory / "importance.png", dpi=90))
    states = order["state"].value_counts()
    if len(states):
        fig, ax = new_figure(4.8, 3.0)
        ax.bar(states.index, states.values, color=[_COLOURS.get(s, "tab:gray") for s in states.index])
        for i, v in enumerate(states.values):
            ax.text(i, v, str(v), ha="center", va="bottom", fontsize=8)
        ax.set_ylabel("trials")
        ax.set_title("Trials by state")
        written.append(save_figure(fig, directory / "trial_states.png", dpi=90))
    return written


def _axis_values(series: pd.Series) -> tuple[np.ndarray, list[float], list[str]]:
    """A hyperparameter's values on a 0..1 axis (log scale for positive numbers over a decade)."""
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if numeric:
        v = series.astype(float).to_numpy()
        log = bool((v > 0).all() and v.max() / v.min() > 10)
        t = np.log10(v) if log else v
        lo, hi = float(t.min()), float(t.max())
        scaled = (t - lo) / (hi - lo) if hi > lo else np.full(len(t), 0.5)
        ticks = [0.0, 1.0]
        labels = [f"{(10 ** x if log else x):.3g}" for x in (lo, hi)]
        return scaled, ticks, labels
    levels = sorted(map(str, series.unique()))
    index = {lv: i for i, lv in enumerate(levels)}
    scaled = np.array([index[str(x)] for x in series], dtype=float) / max(1, len(levels) - 1)
    return scaled, [i / max(1, len(levels) - 1) for i in range(len(levels))], levels


def _parallel_coordinates(ok: pd.DataFrame, varied: list[str], metric: str, directory: Path) -> Path:
    import matplotlib  # matplotlib is heavy: only for a report

    fig, ax = new_figure(1.8 * (len(varied) + 1) + 1.5, 4.2)
    columns = [*varied, metric]
    scaled = {c: _axis_values(ok[c]) for c in columns}
    score = ok[metric].astype(float).to_numpy()
    lo, hi = float(np.nanmin(score)), float(np.nanmax(score))
    norm = matplotlib.colors.Normalize(lo, hi if hi > lo else lo + 1e-9)
    cmap = matplotlib.colormaps["viridis_r" if metric in LOWER_IS_BETTER else "viridis"]
    for i in range(len(ok)):
        ys = [scaled[c][0][i] for c in columns]
        ax.plot(range(len(columns)), ys, color=cmap(norm(score[i])), alpha=0.7, lw=1.2)
    for x, c in enumerate(columns):
        ax.axvline(x, color="black", lw=0.6)
        _, ticks, labels = scaled[c]
        for t, label in zip(ticks, labels):
            ax.text(x + 0.03, t, label, fontsize=7, va="center")
    ax.set_xticks(range(len(columns)), columns)
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(columns) - 0.6)
    ax.set_title(f"Parallel coordinates (colour: validation {metric})")
    if not math.isfinite(lo):
        logger.debug("no finite score to colour by")
    return save_figure(fig, directory / "parallel_coordinates.png", dpi=90)
