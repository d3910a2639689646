"""``--preset musicnn-msd|musicnn-mtt``: a pretrained network's embeddings and tag
probabilities as feature columns, extracted, trained on and predicted from like any
other preset."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from featx.errors import ConfigError
from featx.features.settings import FeatureSettings

pytestmark = pytest.mark.slow  # every test here trains, reads real data or runs real processes

REPO = Path(__file__).resolve().parents[1]
INSTALL_LINE = "the pretrained musicnn weights come from the musicnn package: pip install --no-deps musicnn==0.1.0"


def _segments(path, settings: FeatureSettings) -> np.ndarray:
    from featx.extract.audio import load, segment

    y = load(path, sr=settings.sr)
    return segment(y, hop=settings.segment_hop, length=settings.segment_samples)


def _expected(mn, segments, sr: int, model: str) -> np.ndarray:
    """Each segment's musicnn_embeddings, averaged over its patches: embeddings, then tags."""
    rows = []
    for seg in segments:
        out = mn.musicnn_embeddings(seg, sr, model=model)
        rows.append(np.concatenate([out.embeddings.mean(axis=0), out.taggram.mean(axis=0)]))
    return np.stack(rows)


# --- settings ----------------------------------------------------------------------------

def test_columns_embeddings_then_tags_from_the_package(mn):
    for preset, model in (("musicnn-mtt", "MTT_musicnn"), ("musicnn-msd", "MSD_musicnn")):
        settings = FeatureSettings(preset=preset)
        cols = settings.feature_columns()
        tags = mn.tag_names(model)
        assert cols[:200] == [f"emb_{i}" for i in range(200)]
        assert cols[200:] == [f"tag_{t.replace(' ', '_')}" for t in tags]
        assert len(set(cols)) == 250
        assert settings.columns() == ["filename", "length", *cols, "label"]
        assert FeatureSettings.from_dict(settings.to_dict()) == settings
    assert "tag_no_vocals" in FeatureSettings(preset="musicnn-mtt").feature_columns()
    assert "tag_female_vocalists" in FeatureSettings(preset="musicnn-msd").feature_columns()


def test_segments_shorter_than_one_patch_are_refused():
    with pytest.raises(ConfigError, match=r"at least 2\.976 s .*segment_seconds=2\.5"):
        FeatureSettings(preset="musicnn-mtt", segment_seconds=2.5)
    with pytest.raises(ConfigError, match="unknown preset 'musicnn'"):
        FeatureSettings(preset="musicnn")
    FeatureSettings(preset="musicnn-msd", segment_seconds=None)  # whole files: any length checked per file


# --- extraction ----------------------------------------------------------------------------

def test_extract_synthetic_corpus_rows_equal_the_network_per_segment(mn, corpus, tmp_path, run_cli):
    out = tmp_path / "emb.csv"
    run_cli("extract", corpus, "-o", out, "--preset", "musicnn-mtt", "-j", "1")
    table = pd.read_csv(out)
    settings = FeatureSettings(preset="musicnn-mtt")
    assert list(table.columns) == settings.columns()
    assert len(table) == 4 * 2  # four 6.5-s clips, two full 3-s segments each
    assert sorted(set(table["label"])) == ["clicks", "tones"]
    record = json.loads(Path(f"{out}.settings.json").read_text())
    assert record["settings"]["preset"] == "musicnn-mtt"
    for wav in ("tones/tones.00000.wav", "clicks/clicks.00001.wav"):
        rows = table[table["filename"].str.startswith(wav.split("/")[0] + "/" + Path(wav).stem + ".")]
        assert len(rows) == 2, table["filename"].tolist()
        segments = _segments(corpus / wav, settings)
        expected = _expected(mn, segments, settings.sr, "MTT_musicnn")
        np.testing.assert_allclose(rows[settings.feature_columns()].to_numpy(), expected, atol=1e-5)
    tags = table[[c for c in table.columns if c.startswith("tag_")]].to_numpy()
    assert np.all((tags >= 0) & (tags <= 1))


def test_worker_processes_give_the_same_rows(mn, corpus, tmp_path, run_cli):
    one, two = tmp_path / "j1.csv", tmp_path / "j2.csv"
    run_cli("extract", corpus / "clicks", "-o", one, "--preset", "musicnn-mtt", "-j", "1")
    run_cli("extract", corpus / "clicks", "-o", two, "--preset", "musicnn-mtt", "-j", "2")
    assert one.read_bytes() == two.read_bytes()


def test_whole_file_averages_every_patch_of_the_file(mn, corpus, tmp_path, run_cli):
    out = tmp_path / "whole.csv"
    run_cli("extract", corpus / "tones", "-o", out, "--preset", "musicnn-msd", "--whole-file", "-j", "1")
    table = pd.read_csv(out)
    assert len(table) == 2
    row = table[table["filename"] == "tones.00001.wav"]
    got = row[FeatureSettings(preset="musicnn-msd").feature_columns()].to_numpy()[0]
    ref = mn.musicnn_embeddings(corpus / "tones" / "tones.00001.wav", model="MSD_musicnn")
    assert len(ref.starts) == 2  # 6.5 s: two whole 3-s patches
    expected = np.concatenate([ref.embeddings.mean(axis=0), ref.taggram.mean(axis=0)])
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_extract_real_gtzan_clips_one_patch_per_segment(mn, gtzan_dir, tmp_path, run_cli):
    audio = tmp_path / "audio"
    for genre in ("classical", "rock"):
        (audio / genre).mkdir(parents=True)
        os.symlink(gtzan_dir / "audio" / genre / f"{genre}.00000.wav", audio / genre / f"{genre}.00000.wav")
    out = tmp_path / "gtzan_mtt.csv"
    run_cli("extract", audio, "-o", out, "--preset", "musicnn-mtt", "-j", "1")
    table = pd.read_csv(out)
    settings = FeatureSettings(preset="musicnn-mtt")
    assert list(table.columns) == settings.columns()
    assert len(table) == 20  # ten 3-s segments per 30-s clip
    tag_cols = settings.feature_columns()[200:]
    for genre, fitting in (("classical", {"tag_classical", "tag_strings", "tag_violin", "tag_piano"}),
                           ("rock", {"tag_rock", "tag_guitar"})):
        rows = table[table["label"] == genre]
        assert len(rows) == 10
        segments = _segments(gtzan_dir / "audio" / genre / f"{genre}.00000.wav", settings)
        # a GTZAN 3-s segment is exactly one musicnn patch
        assert all(len(mn.musicnn_patches(mn.musicnn_logmel(s, sr=settings.sr))) == 1 for s in segments[:2])
        expected = _expected(mn, segments, settings.sr, "MTT_musicnn")
        np.testing.assert_allclose(rows[settings.feature_columns()].to_numpy(), expected, atol=1e-5)
        mean_tags = rows[tag_cols].mean()
        top3 = set(mean_tags.sort_values(ascending=False).index[:3])
        assert top3 & fitting, (genre, top3)


# --- training and prediction ----------------------------------------------------------------

def test_svm_on_embeddings_then_predict_on_audio(mn, corpus, tmp_path, run_cli):
    csv = tmp_path / "emb.csv"
    run_cli("extract", corpus, "-o", csv, "--preset", "musicnn-mtt", "-j", "1")
    bundle = tmp_path / "svm"
    run_cli("train", csv, "-m", "svm", "--folds", "2", "-o", bundle)
    metadata = json.loads((bundle / "metadata.json").read_text())
    assert metadata["settings"]["preset"] == "musicnn-mtt"
    predictions = tmp_path / "pred.csv"
    run_cli("predict", bundle, corpus / "tones" / "tones.00000.wav", corpus / "clicks" / "clicks.00000.wav",
            "-f", "csv", "-o", predictions)
    frame = pd.read_csv(predictions)
    assert len(frame) == 2
    prob_cols = [c for c in frame.columns if c in ("clicks", "tones")]
    assert len(prob_cols) == 2
    np.testing.assert_allclose(frame[prob_cols].sum(axis=1), 1.0, atol=1e-6)
    # trained on these very clips (the tones and the clicks differ completely): each is recognised
    assert list(frame[prob_cols].idxmax(axis=1)) == ["tones", "clicks"]


# --- missing package ------------------------------------------------------------------------

def test_missing_package_is_one_line_and_other_presets_stay_free_of_tensorflow(corpus, tmp_path):
    # sys.modules[name] = None makes a package unimportable, as if it were not installed
    code = ("import sys; sys.modules['musicnn'] = None\n"
            "from click.testing import CliRunner\n"
            "from featx.cli import main\n"
            "r = CliRunner().invoke(main, ['-q', 'extract', sys.argv[1], '-o', sys.argv[2], '--preset', sys.argv[3],"
            " '-j', '1'])\n"
            "print(r.exit_code); print(r.output.strip()); print('tensorflow' in sys.modules)\n")

    def run(preset, name):
        proc = subprocess.run([sys.executable, "-c", code, str(corpus), str(tmp_path / name), preset],
                              capture_output=True, text=True, cwd=REPO, timeout=600,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.splitlines()

    lines = run("musicnn-msd", "emb.csv")
    assert lines[0] == "1"
    assert lines[1:-1] == [f"Error: {INSTALL_LINE}"]
    assert lines[-1] == "False"
    assert not (tmp_path / "emb.csv").exists()
    assert run("gtzan", "kaggle.csv") == ["0", "", "False"]  # -q: nothing printed
    assert (tmp_path / "kaggle.csv").exists()
