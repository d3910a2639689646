"""A sweep's report: results table, best configuration and figures."""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pandas as pd

from ..io.atomic import atomic_write
from ..training.config import LOWER_IS_BETTER, metric_names

logger = logging.getLogger(__name__)
from ..reporting.blocks import render_html, render_markdown
from ..reporting.figures import sweep_figures
from .figures import study_figures
from .plan import results_frame
from .plan import SweepOutcome
from .space import BEST, Distribution, LEVELS, display_value


# ---------------------------------------------------------------------------
# Reports




def _fmt(value, digits: int = 4) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _results_table(frame: pd.DataFrame, names: list[str], metric: str) -> tuple[list, list]:
    ok = frame[frame["status"] == "ok"].sort_values([metric, f"{metric}_std"],
                                                    ascending=[metric in LOWER_IS_BETTER, True],
                                                    kind="stable")
    has_epochs = "epochs_run" in ok.columns
    shown = [m for m in metric_names(False) + metric_names(True) if m in frame.columns]
    shown = list(dict.fromkeys(shown))
    headers = ["rank", *names, *[f"{m} (mean ± std)" for m in shown]]
    headers += (["epochs run"] if has_epochs else []) + ["time (s)"]
    rows = []
    for rank, (_, r) in enumerate(ok.iterrows(), start=1):
        cells = [str(rank), *[_fmt(r[n]) if not isinstance(r[n], float) else f"{r[n]:g}" for n in names]]
        cells += [f"{r[m]:.4f} ± {r[f'{m}_std']:.4f}" for m in shown]
        if has_epochs:
            cells.append(f"{r['epochs_run']:.1f}")
        cells.append(f"{r['train_seconds']:.1f}")
        rows.append(cells)
    return headers, rows


def _best_blocks(outcome: SweepOutcome, frame: pd.DataFrame) -> list:
    plan, best = outcome.plan, outcome.best
    o = plan.options
    blocks: list = [("h2", "Best configuration")]
    if best is None:
        return blocks + [("p", "No trial finished successfully.")]
    record = outcome.records[best.key]
    m = record["metrics"][o.level]
    blocks.append(("facts", [*[(k, str(v)) for k, v in best.shown.items()],
                             (f"validation {o.metric}", f"{m[o.metric]:.4f} ± {m['std'][o.metric]:.4f} "
                                                        f"({plan.design.description})"),
                             ("trial", best.key)]))
    metrics_path = plan.options.output / BEST / "metrics.json"
    if not metrics_path.exists():
        return blocks + [("p", "The best configuration has not been retrained on the test part "
                               "(run without --no-retrain-best).")]
    test = json.loads(metrics_path.read_text())
    blocks.append(("p", f"Retrained on all non-test rows and scored once on the test part "
                        f"({plan.design.test_description}); the bundle is in {BEST}/."))
    rows = []
    names = metric_names(bool(test.get("multi_label")))
    levels = LEVELS if plan.table.segmented else ("track",)
    for level in levels:
        t = test[level]
        rows.append([f"test, {level}", str(t["n"]), *[f"{t[k]:.4f}" for k in names]])
    for level in levels:
        v = record["metrics"][level]
        rows.append([f"validation, {level}", str(v["n"]),
                     *[f"{v[k]:.4f} ± {v['std'][k]:.4f}" for k in names]])
    blocks.append(("table", ["part", "n", *names], rows))
    classes = test["classes"]
    if test.get("multi_label"):  # several genres per track: no confusion matrix
        if (plan.options.output / BEST / "figures" / "per_genre.png").exists():
            blocks.append(("img", f"{BEST}/figures/per_genre.png", "test per-genre precision, recall and F1"))
        return blocks
    cm = test["track"]["confusion_matrix"]
    blocks += [("h3", "Test confusion matrix (track level, counts)"),
               ("table", ["true \\ predicted", *classes], [[c, *map(str, row)] for c, row in zip(classes, cm)])]
    for name, alt in (("confusion_normalized.png", "test confusion matrix (row-normalised)"),
                      ("curves.png", "training curves of the retrained model")):
        if (plan.options.output / BEST / "figures" / name).exists():
            blocks.append(("img", f"{BEST}/figures/{name}", alt))
    return blocks


def report_blocks(outcome: SweepOutcome, figures: list[Path]) -> list:
    plan = outcome.plan
    o = plan.options
    frame = outcome.results
    names = plan.space.names
    ok = int((frame["status"] == "ok").sum())
    blocks: list = []
    if plan.design.leaky:
        blocks.append(("p", "WARNING: accuracy is inflated: random per-segment split, segments of one "
                            "track are in both training and validation data."))
    blocks.append(("h1", f"featx sweep: {plan.spec.name} on {Path(o.csv).name}"))
    search = o.search + (f" ({o.n_iter} {'samples' if o.search == 'random' else 'trials'}, seed {o.seed})"
                         if o.search != "grid" else "")
    search += f", pruning: {o.prune}" if o.prune != "none" else ""
    blocks.append(("facts", [
        ("model", f"{plan.spec.name} ({plan.spec.description})"),
        ("data", f"{o.csv} ({plan.table.n_rows} rows, {len(set(plan.table.tracks))} tracks, "
                 f"sha256 {plan.data['sha256'][:12]})"),
        ("search", f"{search}; {outcome.total} {'trials' if o.search == 'tpe' else 'combinations'}: "
                   f"{ok} finished, {outcome.pruned} pruned, {outcome.failed} failed, {outcome.pending} pending"),
        ("study", f"{outcome.study!r} in {outcome.storage} (Optuna; optuna.load_study reads it)"),
        ("selection", f"{o.level}-level {o.metric} on validation data only: {plan.design.description}"),
        ("test part", f"{plan.design.test_description} ({len(plan.design.test)} rows), used once for "
                      "the best configuration"),
        ("seed", str(o.seed)),
        ("hyperparameters", "; ".join(
            f"{k}: {v}" if isinstance(v, Distribution) else f"{k}: {', '.join(str(display_value(x)) for x in v)}"
            for g in plan.space.grids for k, v in g.items())),
    ]))
    blocks += _best_blocks(outcome, frame)
    blocks.append(("h2", f"All trials, sorted by validation {o.metric}"))
    blocks.append(("p", f"Means over {len(plan.design.folds)} validation fold(s) ± standard deviation across "
                        f"folds, {o.level} level. Time is the whole trial (all folds)."))
    headers, rows = _results_table(frame, names, o.metric)
    blocks.append(("table", headers, rows))
    if figures:
        blocks.append(("h2", "Figures"))
        for path in figures:
            blocks.append(("img", f"figures/{path.name}", path.stem.replace("_", " ")))
    pruned = frame[frame["status"] == "pruned"]
    if len(pruned):
        blocks.append(("h2", f"Pruned trials ({len(pruned)})"))
        used = [c for c in ("epochs_run", "folds_run") if c in frame.columns]
        blocks.append(("table", [*names, *[c.replace("_", " ") for c in used], "time (s)"],
                       [[_fmt(r[n]) for n in names] + [_fmt(r[c], 0) for c in used]
                        + [_fmt(r["train_seconds"], 1)] for _, r in pruned.iterrows()]))
    failed = frame[frame["status"] == "failed"]
    if len(failed):
        blocks.append(("h2", f"Failed trials ({len(failed)})"))
        blocks.append(("table", [*names, "reason"],
                       [[_fmt(r[n]) for n in names] + [str(r["error"])] for _, r in failed.iterrows()]))
    pending = frame[frame["status"] == "pending"]
    if len(pending):
        blocks.append(("p", f"{len(pending)} combination(s) have not run yet; run the same command "
                            "again to finish the sweep."))
    return blocks


def write_report(outcome: SweepOutcome) -> tuple[Path, Path]:
    """``report.md`` and a self-contained ``report.html`` (figures embedded) in the sweep folder."""
    out = outcome.plan.options.output
    if outcome.results is None:
        outcome.results = results_frame(outcome.plan, outcome.records)
    figures = sweep_figures(outcome.results, outcome.plan.space.names, outcome.plan.options.metric,
                            out / "figures")
    figures += study_figures(outcome.results, outcome.plan.space.names, outcome.plan.options.metric,
                             out / "figures")
    blocks = report_blocks(outcome, figures)
    md = atomic_write(out / "report.md", render_markdown(blocks))
    title = f"featx sweep: {outcome.plan.spec.name} on {Path(outcome.plan.options.csv).name}"
    html = atomic_write(out / "report.html", render_html(blocks, out, title))
    return md, html
