"""The example outputs shown in the docs are what the commands print today.

A page marks an example by a comment line just before a ``console`` code block::

    .. checked example: needs gtzan

    .. code-block:: console

       $ featx train features_csv/features_30_sec.csv -m svm -o models/svm
       svm: track accuracy 0.7580, ...
       bundle written to models/svm

Lines starting with ``$ `` are commands (a line ending in ``\\`` continues on the next);
the lines after each, up to the next command, are its expected standard output. The
marked blocks of one page run in order, in one fresh folder that holds a link
``features_csv`` to the repository's tables (and, with ``needs gtzan``, a link ``gtzan``
to the real GTZAN material; the page is skipped without it). Durations (``1.6 s``,
``(7.7 s)``) are masked on both sides, and a line ``...`` in the expected output stands
for any number of lines. A command must exit 0.

Adding an example is adding such a block to a page; nothing here changes.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"

MARK = re.compile(r"^\.\. checked example(?::(?P<options>[^\n]*))?\n\n"
                  r"\.\. code-block:: console\n\n(?P<body>(?:(?:   [^\n]*)?\n)+)", re.M)
DURATION = re.compile(r"\b\d+(?:\.\d+)? s\b")


def _examples(page: Path) -> list[tuple[set[str], list[tuple[str, str]]]]:
    """Each marked block of ``page``: its options and its (command, expected output) pairs."""
    found = []
    for match in MARK.finditer(page.read_text()):
        options = set((match.group("options") or "").split())
        steps: list[tuple[str, list[str]]] = []
        for line in match.group("body").rstrip("\n").split("\n"):
            line = line[3:]
            if steps and steps[-1][0].endswith("\\") and not steps[-1][1]:  # a continued command
                steps[-1] = (steps[-1][0][:-1].rstrip() + " " + line.strip(), [])
            elif line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                assert steps, f"{page.name}: output before any '$ ' command"
                steps[-1][1].append(line)
        found.append((options, [(cmd, "\n".join(out)) for cmd, out in steps]))
    return found


PAGES = sorted(p for p in DOCS.rglob("*.rst") if _examples(p))


def _normalise(text: str) -> list[str]:
    lines = [DURATION.sub("<t> s", line.rstrip()) for line in text.strip("\n").split("\n")]
    return [line for line in lines if line]  # pandas prints a blank-ish index row


def _matches(want: list[str], got: list[str]) -> bool:
    """``want`` equals ``got``, a ``...`` line standing for any run of lines."""
    if not want:
        return not got
    if want[0] == "...":
        return any(_matches(want[1:], got[k:]) for k in range(len(got) + 1))
    return bool(got) and want[0] == got[0] and _matches(want[1:], got[1:])


def test_the_docs_have_checked_examples():
    names = {p.relative_to(DOCS).as_posix() for p in PAGES}
    assert "getting-started.rst" in names, names


def test_a_changed_output_is_caught():
    """The comparison is strict enough to fail: one changed figure is a mismatch."""
    want = _normalise("svm: track accuracy 0.7580\nbundle written to models/svm (1.6 s)")
    assert _matches(want, _normalise("svm: track accuracy 0.7580\nbundle written to models/svm (12.3 s)"))
    assert not _matches(want, _normalise("svm: track accuracy 0.7590\nbundle written to models/svm (1.6 s)"))
    assert _matches(["a", "...", "z"], ["a", "b", "c", "z"]) and not _matches(["a", "...", "z"], ["a", "b"])


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_docs_examples_print_what_the_page_shows(page, tmp_path, request):
    blocks = _examples(page)
    (tmp_path / "features_csv").symlink_to(REPO / "features_csv")
    if any("gtzan" in options for options, _ in blocks):
        (tmp_path / "gtzan").symlink_to(request.getfixturevalue("gtzan_dir"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "COLUMNS": "200"}
    for _, steps in blocks:
        for command, expected in steps:
            done = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True,
                                  text=True, timeout=900)
            assert done.returncode == 0, (command, done.stderr)
            want, got = _normalise(expected), _normalise(done.stdout)
            assert _matches(want, got), (
                f"{page.name}: `{command}` printed\n" + "\n".join(got) + "\nbut the page shows\n"
                + "\n".join(want))


def test_a_page_is_read_as_commands_and_outputs(tmp_path):
    page = tmp_path / "page.rst"
    page.write_text("Text.\n\n.. checked example: needs gtzan\n\n.. code-block:: console\n\n"
                    "   $ featx sweep a.csv -m svm \\\n         -p C=1,3\n   best: C=3.0\n"
                    "   $ featx models\n   svm\n\nMore text.\n\n.. code-block:: console\n\n"
                    "   $ featx demo\n   not checked\n")
    assert _examples(page) == [({"needs", "gtzan"}, [("featx sweep a.csv -m svm -p C=1,3", "best: C=3.0"),
                                                      ("featx models", "svm")])]
