"""`featx predict`: what it says beside the predictions."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from featx.cli import main


def _invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.fixture
def whole_clip_bundle(tmp_path, tone, clicks, write_wav):
    """A knn trained on one row per 10-s clip, and a 40-s file for it."""
    root = tmp_path / "audio"
    for i in range(4):
        write_wav(root / "tones" / f"tones.{i:05d}.wav", tone(300 + 100 * i, 10.0))
        write_wav(root / "clicks" / f"clicks.{i:05d}.wav", clicks(90 + 10 * i, 10.0))
    table = tmp_path / "whole.csv"
    assert _invoke("-q", "extract", root, "-o", table, "--whole-file", "-j", "1").exit_code == 0
    bundle = tmp_path / "bundle"
    assert _invoke("-q", "train", table, "-m", "knn", "-p", "n_neighbors=3", "--folds", "2",
                   "-o", bundle).exit_code == 0
    song = write_wav(tmp_path / "long" / "song.wav",
                     np.concatenate([tone(350, 10.0), clicks(95, 10.0), tone(400, 10.0), clicks(100, 10.0)]))
    return bundle, song


def test_the_windows_note_names_the_column_only_where_it_is_shown(whole_clip_bundle):
    bundle, song = whole_clip_bundle
    table = _invoke("predict", bundle, song)  # the default table has no windows column
    assert table.exit_code == 0, table.output
    assert "windows" not in table.stdout.splitlines()[0]
    assert table.stderr.count("windows of that length") == 1
    assert "column 'windows'" not in table.stderr
    for fmt in ("csv", "json"):
        shown = _invoke("predict", bundle, song, "-f", fmt)
        assert shown.exit_code == 0 and "windows" in shown.stdout
        assert shown.stderr.count("(column 'windows')") == 1, shown.stderr
