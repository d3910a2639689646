"""Markdown reports for training and evaluation runs."""
from __future__ import annotations

from pathlib import Path

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


def _summary_table(metrics: dict) -> list[str]:
    lines = ["| level | n | " + " | ".join(_HEAD) + " |", "|---|---|" + "---|" * len(_HEAD)]
    for level in ("segment", "track"):
        m = metrics[level]
        cells = [f"{m[k]:.4f} ± {m['std'][k]:.4f}" if len(m["per_fold"]) > 1 else f"{m[k]:.4f}"
                 for k in _HEAD]
        lines.append(f"| {level} | {m['n']} | " + " | ".join(cells) + " |")
    return lines


def _per_fold_table(m: dict) -> list[str]:
    lines = ["| fold | n | " + " | ".join(_HEAD) + " |", "|---|---|" + "---|" * len(_HEAD)]
    for fold in m["per_fold"]:
        lines.append(f"| {fold['fold']} | {fold['n']} | " + " | ".join(_fmt(fold[k]) for k in _HEAD) + " |")
    return lines


def _per_class_table(m: dict) -> list[str]:
    lines = ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for cls, v in m["per_class"].items():
        lines.append(f"| {cls} | {v['precision']:.4f} | {v['recall']:.4f} | {v['f1']:.4f} | {v['support']} |")
    return lines


def _confusion_table(m: dict, classes: list[str]) -> list[str]:
    lines = ["| true \\ predicted | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
    for cls, row in zip(classes, m["confusion_matrix"]):
        lines.append(f"| {cls} | " + " | ".join(str(v) for v in row) + " |")
    return lines


def render_report(metrics: dict, *, title: str, facts: list[tuple[str, str]], figures: list[str],
                  config: dict | None = None) -> str:
    """A Markdown report. Its first line warns when the split leaks (``metrics['leaky']``)."""
    lines = []
    if metrics.get("leaky"):
        lines += [LEAKY_WARNING, ""]
    overlap = metrics.get("training_overlap") or {}
    if overlap.get("tracks"):
        lines += [training_overlap_warning(overlap, bold=True), ""]
    lines += [f"# {title}", ""]
    lines += [f"- **{k}:** {v}" for k, v in facts]
    lines += ["", "## Summary", "",
              "Headline figures are means over folds (± standard deviation across folds). "
              "Track level averages the segment probabilities of each track; for whole-file rows "
              "the two levels agree.", ""]
    lines += _summary_table(metrics)
    classes = metrics["classes"]
    for level in ("track", "segment"):
        m = metrics[level]
        lines += ["", f"## {level.capitalize()} level", ""]
        if len(m["per_fold"]) > 1:
            lines += ["### Per fold", ""] + _per_fold_table(m) + [""]
        lines += ["### Per class (all folds pooled)", ""] + _per_class_table(m)
        lines += ["", "### Confusion matrix (counts, all folds pooled)", ""] + _confusion_table(m, classes)
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{Path(f).stem}]({f})" for f in figures]
    if config:
        lines += ["", "## Configuration", "", "```"]
        lines += [f"{k}: {v}" for k, v in config.items()]
        lines += ["```"]
    return "\n".join(lines) + "\n"


def write_report(path, text: str) -> Path:
    from ..io.atomic import atomic_write

    return atomic_write(path, text)


def write_outputs(directory, *, metrics: dict, predictions, title: str, facts: list[tuple[str, str]],
                  histories: list[dict] | None = None, config: dict | None = None) -> list[Path]:
    """Write ``metrics.json``, ``predictions.csv``, figures and ``report.md`` into ``directory``."""
    from ..bundle import write_json
    from .figures import write_evaluation_figures

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    if metrics.get("leaky"):
        metrics = {"warning": "accuracy is inflated: random per-segment split (segments of one track "
                              "on both sides)", **metrics}
    write_json(directory / "metrics.json", metrics)
    predictions.to_csv(directory / "predictions.csv", index=False)
    written += [directory / "metrics.json", directory / "predictions.csv"]
    if histories is not None:
        write_json(directory / "history.json", histories)
        written.append(directory / "history.json")
    figures = write_evaluation_figures(directory / "figures", metrics, histories)
    written += figures
    text = render_report(metrics, title=title, facts=facts,
                         figures=[str(f.relative_to(directory)) for f in figures], config=config)
    written.append(write_report(directory / "report.md", text))
    return written
