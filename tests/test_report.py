"""Reports show users' labels and names as text: rendered by a real CommonMark renderer (with
raw HTML allowed, as many viewers do), no label becomes a tag, a link or markup, and every
table keeps its columns. Checked on the renderer itself and on the reports of real
``featx train`` (single- and multi-label) and ``featx sweep`` runs."""
from __future__ import annotations

from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from featx.reporting.blocks import escape_markdown, render_html, render_markdown
from featx.reporting.report import _averaging_note
from featx.training.metrics import compute_metrics

markdown_it = pytest.importorskip("markdown_it", reason="markdown-it-py comes with rich, which Keras needs")

#: Labels a hostile or careless table may hold: HTML, links, images, autolinks, table
#: separators, line breaks, emphasis, code, headings, math, entities, direction overrides.
HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[x](javascript:alert(1))",
    "![i](http://example.invalid/t.png)",
    "<javascript:alert(1)>",
    "a|b",
    "two\nlines\r\n| x | y |",
    "*em* _u_ `c` ~~s~~ $m$",
    "# heading",
    "1. item",
    "- item",
    "&lt;b&gt; &amp; \\",
    "rtl\u202eevil",
    "[ref]: javascript:alert(1)",
]


def _shown(label: str) -> str:
    """How a label reads in a report: on one line, direction overrides made visible."""
    text = label.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    return text.replace("\u202e", "\ufffd")


class _Page(HTMLParser):
    """The tags, link targets and table cells of an HTML page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.targets: list[str] = []
        self.tables: list[list[list[str]]] = []
        self.headings: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.targets += [v for k, v in attrs if k in ("href", "src")]
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th", "h1", "h2", "h3"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None
        elif tag in ("h1", "h2", "h3") and self._cell is not None:
            self.headings.append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _render(md: str) -> _Page:
    html = markdown_it.MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(md)
    page = _Page()
    page.feed(html)
    return page


def _check_safe(page: _Page, *, images: int = 0):
    allowed = {"h1", "h2", "h3", "p", "ul", "li", "strong", "table", "thead", "tbody", "tr", "th", "td",
               "pre", "code", "img"}
    assert set(page.tags) <= allowed, set(page.tags) - allowed
    assert page.tags.count("img") == images and "a" not in page.tags
    assert all(t.startswith("figures/") or t.startswith("best/figures/") for t in page.targets), page.targets
    for table in page.tables:
        assert len({len(row) for row in table}) == 1, table  # every row has the header's columns


def test_every_block_shows_hostile_text_as_written(tmp_path):
    blocks = [("p", "WARNING: " + HOSTILE[0]), ("h1", HOSTILE[2]), ("h2", HOSTILE[6]),
              ("facts", [(label, label) for label in HOSTILE]),
              ("p", HOSTILE[9]), ("p", HOSTILE[10]), ("p", "  " * 4 + HOSTILE[0]),
              ("table", ["true \\ predicted", *HOSTILE], [[label, *(str(i) for i in range(len(HOSTILE)))]
                                                          for label in HOSTILE]),
              ("img", "figures/x.png", HOSTILE[3]),
              ("code", ["params: " + HOSTILE[6], "```", "end"])]
    page = _render(render_markdown(blocks))
    _check_safe(page, images=1)
    table, = page.tables
    assert table[0] == ["true \\ predicted", *map(_shown, HOSTILE)]
    assert [row[0] for row in table[1:]] == [_shown(label) for label in HOSTILE]
    assert page.headings == [_shown(HOSTILE[2]), _shown(HOSTILE[6])]
    assert page.tags.count("pre") == 1  # the code block was not closed by the ``` inside it
    html = render_html(blocks, tmp_path, title=HOSTILE[0])
    assert "<script>" not in html and "<img src=x" not in html


@pytest.mark.parametrize("label", HOSTILE)
def test_escaped_text_renders_as_itself(label):
    html = markdown_it.MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(
        escape_markdown(label, line_start=True))
    page = _Page()
    page.feed(html)
    assert page.tags == ["p"]
    text = html.removeprefix("<p>").removesuffix("</p>\n")
    from html import unescape

    assert unescape(text) == _shown(label)


def _hostile_table(path, classes, *, multi=False):
    """A separable feature table whose labels are ``classes`` (``multi``: pairs of them, 'a;b')."""
    rng = np.random.default_rng(0)
    rows = []
    for ci, label in enumerate(classes):
        for t in range(4):
            centre = rng.normal(ci * 3.0, 0.3, 4)
            for s in range(2):
                tag = f"{label};{classes[(ci + 1) % len(classes)]}" if multi and t % 2 else label
                rows.append([f"g{ci}.{t:05d}.{s}.wav", 66149, *(centre + rng.normal(0, 0.3, 4)), tag])
    frame = pd.DataFrame(rows, columns=["filename", "length", "f_a_mean", "f_a_var", "tempo", "f_b", "label"])
    frame["f_a_var"] = frame["f_a_var"].abs() + 0.1
    frame.to_csv(path, index=False)
    return path


LABELS = [label for label in HOSTILE if ";" not in label]


def _check_report(path, labels, *, images):
    page = _render(path.read_text())
    _check_safe(page, images=images)
    shown = {_shown(label) for label in labels}
    cells = {cell for table in page.tables for row in table for cell in row}
    assert shown <= cells  # each label in its own cell, as written
    return page


@pytest.mark.slow
def test_train_report_with_hostile_labels(tmp_path, run_cli):
    csv = _hostile_table(tmp_path / "t.csv", LABELS)
    out = tmp_path / "bundle"
    run_cli("train", csv, "--model", "knn", "-p", "n_neighbors=1", "-o", out, "--folds", "2")
    page = _check_report(out / "report.md", LABELS, images=3)
    matrix = next(t for t in page.tables if t[0][0] == "true \\ predicted")
    assert matrix[0][1:] == [row[0] for row in matrix[1:]]  # the columns are the rows' genres, in order
    assert all(row[1 + i] != "0" for i, row in enumerate(matrix[1:]))  # numbers under the right header


@pytest.mark.slow
def test_multilabel_report_with_hostile_labels(tmp_path, run_cli):
    csv = _hostile_table(tmp_path / "t.csv", LABELS[:5], multi=True)
    out = tmp_path / "bundle"
    run_cli("train", csv, "--model", "knn", "-p", "n_neighbors=3", "--multi-label", "-o", out, "--folds", "2")
    _check_report(out / "report.md", LABELS[:5], images=1)


@pytest.mark.slow
def test_sweep_and_best_reports_with_hostile_labels(tmp_path, run_cli):
    csv = _hostile_table(tmp_path / "<b onclick=x>t|x.csv", LABELS)
    out = tmp_path / "sweep"
    run_cli("sweep", csv, "-m", "knn", "-o", out, "-p", "n_neighbors=1,3", "--folds", "2")
    page = _render((out / "report.md").read_text())
    _check_safe(page, images=page.tags.count("img"))
    assert page.headings[0] == "featx sweep: knn on <b onclick=x>t|x.csv"
    _check_report(out / "best" / "report.md", LABELS, images=3)


def _predictions(folds):
    rows = []
    for fold, pairs in folds.items():
        for k, (label, predicted) in enumerate(pairs):
            probs = {f"prob_{c}": float(c == predicted) for c in "abcd"}
            rows.append({"fold": fold, "track": len(rows), "filename": f"{fold}{k}.wav", "label": label,
                         "predicted": predicted, **probs})
    return pd.DataFrame(rows)


def test_folds_with_few_genres_are_said_to_average_over_those_genres():
    sparse = _predictions({"0": [("a", "a"), ("b", "c")], "1": [("c", "c"), ("d", "a")]})
    metrics = compute_metrics(sparse, list("abcd"))
    assert [f["n_classes"] for f in metrics["track"]["per_fold"]] == [2, 2]
    note = _averaging_note(metrics)
    assert "average over all 4 genres" in note  # pooled over the folds, every genre has tracks
    assert "Within a fold they average over the genres that have tracks in that fold (2 to 2 here)" in note


def test_folds_holding_every_genre_need_no_such_sentence():
    full = _predictions({"0": [("a", "a"), ("b", "b")], "1": [("a", "b"), ("b", "b")]})
    note = _averaging_note(compute_metrics(full, list("ab")))
    assert "Within a fold" not in note


def test_binned_hyperparameter_labels_start_at_the_smallest_value():
    """Many values of a positive hyperparameter become quantile bins whose first label starts at
    the smallest value drawn, not below it (no negative gamma on a heatmap's axis)."""
    import pandas as pd

    from featx.reporting.figures import _ordered_category

    gamma = pd.Series([0.000281, 0.0012, 0.0018, 0.004, 0.009, 0.02, 0.05, 0.11, 0.3, 0.757, 0.6, 0.0005])
    labels = list(pd.Categorical(_ordered_category(gamma)).categories)
    assert len(labels) == 5 and labels[0].startswith("0.000281–") and labels[-1].endswith("–0.757")
