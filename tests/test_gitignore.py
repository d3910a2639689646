"""What the docs' commands write in a clone is ignored by git; the repository's own files are not."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

OUTPUTS = ["featx-demo/audio/drone/drone.00000.wav", "featx-demo/features.csv", "models/svm/metadata.json",
           "sweeps/svm/results.csv", "sweeps/svm/.running/x", "features.csv", "features.csv.settings.json",
           "features.errors.csv", "features_csv/features_3_sec.csv", "spectro/mel/c/0/0/0",
           "plots/mlp/report.png", "predictions.csv", "blends/labels.csv", "reports/cnn2d/report.md",
           "docs/_build/html/index.html"]
OWN = ["models/README.md", "features_csv/README.md", "features_csv/features_30_sec.csv", "docs/conf.py",
       "README.md"]


def _ignored(paths: list[str]) -> set[str]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], input="\n".join(paths),
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode in (0, 1), done.stderr
    return set(done.stdout.split())


def test_outputs_of_the_documented_commands_are_ignored():
    assert set(OUTPUTS) - _ignored(OUTPUTS) == set()


def test_the_repository_files_beside_them_are_not():
    assert _ignored(OWN) == set()
