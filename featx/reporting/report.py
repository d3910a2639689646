"""Markdown reports for training and evaluation runs."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..io.atomic import atomic_write
from ..io.guard import Legacy, claim_folder, json_says, safe_name
from ..io.jsonfile import write_json
from .blocks import render_markdown
from .multilabel import multilabel_blocks

LEAKY_WARNING = (
    "**WARNING: accuracy is inflated: random per-segment split, segments of one track are in "
    "both training and test data.**"
)

def training_overlap_warning(overlap: dict, *, bold: bool = False) -> str:
    """The line that says evaluation figures include tracks the model was trained on."""
    count = f"{'up to ' if overlap.get('at_most') else ''}{overlap['tracks']} of {overlap['of']}"
    where = f" in {overlap['source']}" if overlap.get("source") else ""
    text = (f"WARNING: {count} tracks{where} (e.g. {overlap['example']}) were used to train this "
            "model: these figures are not held-out accuracy (the bundle's own metrics.json has "
            "its held-out figures).")
    return f"**{text}**" if bold else text


_HEAD = ("accuracy", "precision_macro", "recall_macro", "f1_macro")


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _summary_table(metrics: dict) -> tuple:
    rows = []
    for level in ("segment", "track"):
        m = metrics[level]
        cells = [f"{m[k]:.4f} ± {m['std'][k]:.4f}" if len(m["per_fold"]) > 1 else f"{m[k]:.4f}"
                 for k in _HEAD]
        rows.append([level, str(m["n"]), *cells])
    return ("table", ["level", "n", *_HEAD], rows)


def _per_fold_table(m: dict) -> tuple:
    return ("table", ["fold", "n", *_HEAD],
            [[str(fold["fold"]), str(fold["n"]), *(_fmt(fold[k]) for k in _HEAD)] for fold in m["per_fold"]])


#: What the report shows for a figure that does not exist (a genre without rows, or never predicted).
NOT_AVAILABLE = "n/a"


def _per_class_table(m: dict) -> tuple:
    """Per-class scores; n/a where a score is undefined (recall and F1 of a genre without
    rows, precision of a genre never predicted), not a misleading 0.0000."""
    predicted = {}
    if m.get("confusion_matrix"):
        columns = [sum(col) for col in zip(*m["confusion_matrix"])]
        predicted = dict(zip(m["per_class"], columns))
    rows = []
    for cls, v in m["per_class"].items():
        absent = v["support"] == 0
        precision = NOT_AVAILABLE if predicted.get(cls, 1) == 0 else f"{v['precision']:.4f}"
        recall, f1 = ((NOT_AVAILABLE, NOT_AVAILABLE) if absent
                      else (f"{v['recall']:.4f}", f"{v['f1']:.4f}"))
        rows.append([cls, precision, recall, f1, str(v["support"])])
    return ("table", ["class", "precision", "recall", "F1", "support"], rows)


def _confusion_table(m: dict, classes: list[str], *, normalize: bool = False) -> tuple:
    """Counts, or fractions of each true genre's rows (n/a for a genre without rows)."""
    rows = []
    for cls, row in zip(classes, m["confusion_matrix"]):
        total = sum(row)
        if not normalize:
            cells = [str(v) for v in row]
        elif total == 0:
            cells = [NOT_AVAILABLE] * len(row)
        else:
            cells = [f"{v / total:.2f}" for v in row]
        rows.append([cls, *cells])
    return ("table", ["true \\ predicted", *classes], rows)


def _averaging_note(metrics: dict) -> str:
    """How the headline figures were formed: over folds or one evaluation, and which genres."""
    m = metrics["track"]
    if len(m["per_fold"]) > 1:
        text = "Headline figures are means over folds (± standard deviation across folds)."
    else:
        text = "Headline figures are computed once over all evaluated rows (no folds)."
    classes = metrics["classes"]
    present = m.get("macro_classes")
    if present is not None and len(present) < len(classes):
        text += (f" Macro precision, recall and F1 average over the {len(present)} of the model's "
                 f"{len(classes)} genres that have tracks in the evaluated data "
                 f"({', '.join(present)}); the other genres have no rows, so their recall is "
                 f"{NOT_AVAILABLE}.")
    else:
        text += f" Macro precision, recall and F1 average over all {len(classes)} genres."
    per_fold = [f.get("n_classes") for f in m.get("per_fold") or [] if f.get("n_classes") is not None]
    if len(per_fold) > 1 and min(per_fold) < len(present or classes):
        text += (f" Within a fold they average over the genres that have tracks in that fold "
                 f"({min(per_fold)} to {max(per_fold)} here), so with so few tracks per fold the "
                 "means over folds can lie far from the pooled figures (\"pooled\" in metrics.json).")
    return text


def report_blocks(metrics: dict, *, title: str, facts: list[tuple[str, str]], figures: list[str],
                  config: dict | None = None) -> list:
    """The blocks (:mod:`featx.reporting.blocks`) of a training or evaluation report.

    The first block warns when the split leaks (``metrics['leaky']``) or when the
    evaluated tracks include training tracks (``metrics['training_overlap']``).
    """
    blocks: list = []
    if metrics.get("leaky"):
        blocks.append(("p", LEAKY_WARNING.strip("*")))
    overlap = metrics.get("training_overlap") or {}
    if overlap.get("tracks"):
        blocks.append(("p", training_overlap_warning(overlap)))
    blocks += [("h1", title), ("facts", list(facts))]
    if metrics.get("multi_label"):
        return blocks + multilabel_blocks(metrics) + _tail(figures, config)
    blocks += [("h2", "Summary"),
               ("p", _averaging_note(metrics) + " Track level averages the segment probabilities of each "
                     "track; for whole-file rows the two levels agree."),
               _summary_table(metrics)]
    classes = metrics["classes"]
    for level in ("track", "segment"):
        m = metrics[level]
        blocks.append(("h2", f"{level.capitalize()} level"))
        if len(m["per_fold"]) > 1:
            blocks += [("h3", "Per fold"), _per_fold_table(m)]
        blocks += [("h3", "Per class (all folds pooled)"), _per_class_table(m),
                   ("h3", "Confusion matrix (counts, all folds pooled)"), _confusion_table(m, classes),
                   ("h3", "Confusion matrix (fractions of each true genre's rows)"),
                   _confusion_table(m, classes, normalize=True)]
    return blocks + _tail(figures, config)


def render_report(metrics: dict, *, title: str, facts: list[tuple[str, str]], figures: list[str],
                  config: dict | None = None) -> str:
    """A Markdown report (:func:`report_blocks`, rendered by
    :func:`featx.reporting.blocks.render_markdown`, which escapes every label and name)."""
    return render_markdown(report_blocks(metrics, title=title, facts=facts, figures=figures, config=config))


def _tail(figures: list[str], config: dict | None) -> list:
    """The figures and configuration sections that end every report."""
    blocks: list = []
    if figures:
        blocks.append(("h2", "Figures"))
        blocks += [("img", f, Path(f).stem) for f in figures]
    if config:
        blocks += [("h2", "Configuration"), ("code", [f"{k}: {v}" for k, v in config.items()])]
    return blocks


def evaluation_dir(bundle_dir, csv) -> Path:
    """The default folder for an evaluation of ``csv``: ``<bundle_dir>/evaluation/<name>``.

    ``<name>`` is the CSV's stem made safe (no separators, no leading dots; a CSV
    named ``...csv`` gives ``unnamed``), so the folder is always a new one below
    ``evaluation/`` and never the bundle's own files. A folder of that name that
    holds the evaluation of another CSV (``metrics.json``'s ``data``), or that is a
    link, is left alone: the name gets ``-2``, ``-3``, ... A re-evaluation of the
    same CSV reuses its folder.
    """

    base = Path(bundle_dir) / "evaluation"
    stem = safe_name(Path(csv).stem)
    source = str(Path(csv).resolve())
    k = 1
    while True:
        candidate = base / (stem if k == 1 else f"{stem}-{k}")
        if not os.path.lexists(candidate):
            return candidate
        record = candidate / "metrics.json"
        if not candidate.is_symlink() and not record.is_symlink() and record.is_file():
            try:
                if json.loads(record.read_text()).get("data") == source:
                    return candidate
            except (OSError, ValueError, AttributeError):
                pass
        k += 1


def write_report(path, text: str) -> Path:
    return atomic_write(path, text)


def write_outputs(directory, *, metrics: dict, predictions, title: str, facts: list[tuple[str, str]],
                  histories: list[dict] | None = None, config: dict | None = None,
                  data: str | None = None) -> list[Path]:
    """Write ``metrics.json``, ``predictions.csv``, figures and ``report.md`` into ``directory``.

    ``data`` names the evaluated data in figure titles; by default the file name of
    the ``("data", ...)`` entry of ``facts``.
    """
    # pulls in pandas: only on this path
    from .figures import write_evaluation_figures  # matplotlib is heavy: only when writing figures

    # a new or empty folder, a bundle, or an evaluation folder featx wrote; never a user's folder
    legacy = Legacy("featx-output", ("metrics.json", "predictions.csv", "history.json", "report.md",
                                     "figures/*.png"), json_says("metrics.json", "classes", None))
    directory = claim_folder(directory, "featx-output", accept=("featx-bundle",), legacy=legacy)
    written = []
    if metrics.get("leaky"):
        metrics = {"warning": "accuracy is inflated: random per-segment split (segments of one track "
                              "on both sides)", **metrics}
    write_json(directory / "metrics.json", metrics)
    atomic_write(directory / "predictions.csv", predictions.to_csv(index=False))
    written += [directory / "metrics.json", directory / "predictions.csv"]
    if histories is not None:
        write_json(directory / "history.json", histories)
        written.append(directory / "history.json")
    if data is None:
        described = dict(facts).get("data")
        data = Path(str(described).split(" (")[0]).name if described else None
    figures = write_evaluation_figures(directory / "figures", metrics, histories, data=data)
    written += figures
    text = render_report(metrics, title=title, facts=facts,
                         figures=[str(f.relative_to(directory)) for f in figures], config=config)
    written.append(write_report(directory / "report.md", text))
    return written
