"""The multi-label blocks of a report: headline figures, per fold, per genre, thresholds."""
from __future__ import annotations

import math

from ..training.config import MULTILABEL_METRIC_NAMES

#: What each multi-label figure means, one line each (shown under the summary table).
MEANINGS = {
    "f1_micro": "F1 over every (track, genre) decision pooled",
    "f1_macro": "mean of the genres' F1 scores",
    "subset_accuracy": "share of tracks whose predicted genre set is exactly the true set",
    "hamming_loss": "share of wrong (track, genre) decisions; lower is better",
    "average_precision_macro": "mAP: mean over genres of the average precision of the probabilities "
                               "(no threshold)",
    "roc_auc_macro": "mean over genres of the ROC AUC of the probabilities (no threshold)",
}


def _fmt(value) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def _cell(m: dict, name: str) -> str:
    if len(m["per_fold"]) > 1 and not math.isnan(m["std"][name]):
        return f"{_fmt(m[name])} ± {m['std'][name]:.4f}"
    return _fmt(m[name])


def multilabel_blocks(metrics: dict) -> list:
    """The blocks (:mod:`featx.reporting.blocks`) of a multi-label run's report body (after its facts)."""
    names = list(MULTILABEL_METRIC_NAMES)
    multi_fold = len(metrics["track"]["per_fold"]) > 1
    blocks: list = [
        ("h2", "Summary"),
        ("p", ("Headline figures are means over folds (± standard deviation across folds). "
               if multi_fold else "Headline figures are computed once over all evaluated rows (no folds). ")
         + "Several genres per track: a genre is predicted where its probability reaches its "
         "threshold. Track level averages the segment probabilities of each track."),
        ("table", ["level", "n", *names],
         [[level, str(metrics[level]["n"]), *(_cell(metrics[level], k) for k in names)]
          for level in ("segment", "track")]),
        ("facts", [(k, MEANINGS[k]) for k in names]),
    ]
    thresholds = metrics.get("thresholds") or {}
    if thresholds:
        classes = metrics["classes"]
        mode = metrics.get("threshold")
        blocks += [("h2", "Thresholds"),
                   ("p", "Tuned per genre on validation predictions of each fold's training rows only "
                         "(final: on the out-of-fold predictions of every row)." if mode == "tuned"
                    else "One threshold for every genre."),
                   ("table", ["fold", *classes],
                    [[str(fold), *(f"{values[c]:.2f}" for c in classes)] for fold, values in thresholds.items()])]
    for level in ("track", "segment"):
        m = metrics[level]
        blocks.append(("h2", f"{level.capitalize()} level"))
        if multi_fold:
            blocks += [("h3", "Per fold"),
                       ("table", ["fold", "n", *names],
                        [[str(f["fold"]), str(f["n"]), *(_fmt(f[k]) for k in names)] for f in m["per_fold"]])]
        rows = []
        for genre, v in m["per_class"].items():
            precision = "n/a" if v.get("predicted", 1) == 0 else f"{v['precision']:.4f}"
            recall, f1 = (("n/a", "n/a") if v["support"] == 0 else (f"{v['recall']:.4f}", f"{v['f1']:.4f}"))
            rows.append([genre, precision, recall, f1, str(v["support"]), str(v.get("predicted", ""))])
        blocks += [("h3", "Per genre (all folds pooled)"),
                   ("table", ["genre", "precision", "recall", "F1", "support", "predicted"], rows)]
    return blocks
