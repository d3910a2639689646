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


def test_every_guide_page_is_in_the_user_guide():
    """Each page of docs/guide is listed in its toctree, and each listed page exists."""
    toctree = (DOCS / "guide" / "index.rst").read_text()
    listed = re.findall(r"^   (\w[\w-]*)$", toctree, re.M)
    pages = sorted(p.stem for p in (DOCS / "guide").glob("*.rst") if p.stem != "index")
    assert sorted(listed) == pages, (listed, pages)


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
