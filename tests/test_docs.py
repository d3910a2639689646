"""The documentation site builds strictly: warnings are errors, cross-references resolve."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import featx
from featx.cli.main import COMMANDS

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


def test_the_user_guide_keeps_a_place_for_each_page_still_to_come():
    """The guide's toctree lists those pages commented out: adding one is one uncommented line."""
    toctree = (DOCS / "guide" / "index.rst").read_text()
    for page in ("optuna", "serve", "realworld", "kerasspeed"):
        assert re.search(rf"^\.\.   {page}$", toctree, re.M), page
    listed = re.findall(r"^   (\w[\w-]*)$", toctree, re.M)
    assert listed and all((DOCS / "guide" / f"{name}.rst").is_file() for name in listed), listed


@pytest.mark.slow
def test_the_docs_build_without_a_warning(tmp_path):
    missing = [m for m in ("sphinx", "pydata_sphinx_theme", "numpydoc", "sphinx_click")
               if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the docs extra is not installed ({', '.join(missing)}): pip install '.[docs]'")
    out = tmp_path / "html"
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-E", "-q", "-b", "html",
         str(DOCS), str(out), "-d", str(tmp_path / "doctrees")],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr and "ERROR" not in done.stderr, done.stderr
    # every exported name is documented, under the module that defines it
    api = "".join(p.read_text() for p in (out / "api").glob("*.html"))
    for name in featx.__all__:
        if name != "__version__":
            module = featx._EXPORTS[name]
            assert f'id="{module}.{name}"' in api, name
    # the command-line reference is rendered from the commands themselves
    cli = (out / "cli.html").read_text()
    for command in COMMANDS:
        assert f'id="featx-{command}"' in cli, command
