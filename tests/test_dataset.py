"""Feature-table reading/validation, track ids and leakage-free splits."""
import json

import numpy as np
import pandas as pd
import pytest

from featx.data.splits import Fold, SplitPlan, assert_no_leakage, make_splits, read_artist_map, read_split_lists
from featx.data.table import read_feature_csv, segment_index, track_id
from featx.errors import ConfigError, DataError
from featx.features.settings import FeatureSettings


def synthetic_table(path, *, n_tracks=12, n_segments=3, classes=("a", "b", "c"), seed=0):
    """Segment rows for ``n_tracks`` tracks per class with class-dependent means."""
    rng = np.random.default_rng(seed)
    rows = []
    for ci, cls in enumerate(classes):
        for t in range(n_tracks):
            for s in range(n_segments):
                name = f"{cls}.{t:05d}.{s}.wav" if n_segments > 1 else f"{cls}.{t:05d}.wav"
                feats = rng.normal(ci, 0.5, size=4)
                rows.append([name, 66149, *feats, cls])
    frame = pd.DataFrame(rows, columns=["filename", "length", "f1", "f2", "f3", "f4", "label"])
    frame.to_csv(path, index=False)
    return path


def test_track_and_segment_ids():
    assert track_id("rock.00001.7.wav") == "rock.00001"
    assert segment_index("rock.00001.7.wav") == 7
    assert segment_index("rock.00001.0.wav") == 0
    # GTZAN's zero-padded track numbers are not segment indices
    assert segment_index("blues.00000.wav") is None
    assert track_id("blues.00000.wav") == "blues.00000"
    assert track_id("rock/rock.00001.12.au") == "rock/rock.00001"
    assert track_id("song.3.wav", segmented=False) == "song.3"


def test_reads_kaggle_tables_with_inferred_settings(gtzan_dir):
    seg = read_feature_csv(gtzan_dir / "features_3_sec.classical_jazz_rock.csv")
    assert seg.n_rows == 2996 and seg.segmented
    assert seg.settings == FeatureSettings(preset="gtzan", segment_seconds=3.0)
    assert len(set(seg.tracks)) == 300
    assert set(seg.labels) == {"classical", "jazz", "rock"}
    assert seg.feature_columns == FeatureSettings(preset="gtzan").feature_columns()
    whole = read_feature_csv(gtzan_dir / "features_30_sec.csv")
    assert not whole.segmented and whole.settings.segment_seconds is None
    assert len(set(whole.tracks)) == 1000 and whole.X.shape == (1000, 57)
    assert "length" not in whole.feature_columns


def test_sidecar_settings_and_mismatch(tmp_path):
    settings = FeatureSettings(preset="gtzan", segment_seconds=None)
    cols = settings.columns()
    frame = pd.DataFrame([[f"x.{i}.wav", 661500] + [float(i)] * (len(cols) - 3) + ["a"] for i in range(3)],
                         columns=cols)
    csv = tmp_path / "f.csv"
    frame.to_csv(csv, index=False)
    (tmp_path / "f.csv.settings.json").write_text(json.dumps({"settings": settings.to_dict()}))
    table = read_feature_csv(csv)
    assert table.settings == settings and table.settings_source == "sidecar"
    # the sidecar says whole files, so 'x.1.wav' is its own track, not segment 1 of 'x'
    assert not table.segmented and list(table.tracks) == ["x.0", "x.1", "x.2"]
    frame.drop(columns=["tempo"]).to_csv(csv, index=False)
    with pytest.raises(DataError, match="tempo"):
        read_feature_csv(csv)


@pytest.mark.parametrize(
    "edit, pattern",
    [
        (lambda f: f.drop(columns=["label"]), "no 'label' column"),
        (lambda f: f.assign(f2=f["f2"].astype(object).where(f.index != 4, "loud")), r"'loud' in column 'f2'"),
        (lambda f: f.assign(f3=f["f3"].where(f.index != 2, np.nan)), r"missing value in column 'f3'.*row 4"),
        (lambda f: f.assign(f1=f["f1"].where(f.index != 5, np.inf)), r"inf value in column 'f1'"),
        (lambda f: f.assign(filename=f["filename"].where(f.index != 0, "a.00000.wav")), "no segment index"),
        (lambda f: f.drop(columns=["filename"]), "no 'filename' column"),
        (lambda f: f.iloc[:0], "no rows"),
    ],
)
def test_bad_tables_give_one_line_errors(tmp_path, edit, pattern):
    csv = synthetic_table(tmp_path / "t.csv")
    edit(pd.read_csv(csv)).to_csv(csv, index=False)
    with pytest.raises(DataError, match=pattern) as info:
        read_feature_csv(csv)
    assert "\n" not in str(info.value) and str(csv) in str(info.value)


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(DataError, match="no such feature CSV"):
        read_feature_csv(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\xff\xfe\x00garbage\x00\x01")
    with pytest.raises(DataError):
        read_feature_csv(bad)


def _assert_grouped(plan, table):
    tracks = table.tracks
    for fold in plan.folds:
        parts = [set(tracks[fold.train]), set(tracks[fold.valid]), set(tracks[fold.test])]
        assert not parts[0] & parts[2] and not parts[0] & parts[1] and not parts[1] & parts[2]


def test_track_split_keeps_segments_of_a_track_together(gtzan_dir):
    table = read_feature_csv(gtzan_dir / "features_3_sec.classical_jazz_rock.csv")
    plan = make_splits(table, split="track", folds=5, seed=3)
    _assert_grouped(plan, table)
    tested = np.concatenate([f.test for f in plan.folds])
    assert sorted(tested) == list(range(table.n_rows))  # every row tested exactly once
    for fold in plan.folds:  # stratified: every genre in every test fold
        assert set(table.labels[fold.test]) == {"classical", "jazz", "rock"}
        assert len(fold.valid) > 0


def test_random_split_leaks_and_is_flagged(gtzan_dir):
    table = read_feature_csv(gtzan_dir / "features_3_sec.classical_jazz_rock.csv")
    plan = make_splits(table, split="random", folds=5, seed=0)
    assert plan.leaky
    fold = plan.folds[0]
    assert set(table.tracks[fold.train]) & set(table.tracks[fold.test])
    with pytest.raises(DataError, match="leaks"):
        assert_no_leakage(plan, table)


def test_artist_split_keeps_artists_apart(gtzan_dir):
    table = read_feature_csv(gtzan_dir / "features_30_sec.csv")
    index = gtzan_dir / "splits" / "GTZANindex.txt"
    mapping = read_artist_map(index)
    assert mapping["blues.00000"] == "John Lee Hooker"
    plan = make_splits(table, split="artist", folds=3, seed=0, artist_map=index)
    _assert_grouped(plan, table)
    artists = np.array([mapping.get(t, f"?{t}") for t in table.tracks])
    for fold in plan.folds:
        assert not set(artists[fold.train]) & set(artists[fold.test])
    with pytest.raises(ConfigError, match="artist mapping"):
        make_splits(table, split="artist", folds=3)


def test_fault_filtered_split_uses_the_lists(gtzan_dir):
    table = read_feature_csv(gtzan_dir / "features_30_sec.csv")
    lists = gtzan_dir / "splits" / "fault_filtered"
    parts = read_split_lists(lists)
    assert sum(v == "train" for v in parts.values()) == 443
    plan = make_splits(table, split="fault-filtered", folds=1, split_dir=lists)
    (fold,) = plan.folds
    assert (len(fold.train), len(fold.valid), len(fold.test)) == (443, 197, 290)
    assert all(parts[t] == "test" for t in table.tracks[fold.test])
    with pytest.raises(ConfigError, match="expected folds=1"):
        make_splits(table, split="fault-filtered", folds=5, split_dir=lists)
    with pytest.raises(ConfigError, match="split_dir=DIR"):
        make_splits(table, split="fault-filtered", folds=1)


def test_split_errors(tmp_path):
    table = read_feature_csv(synthetic_table(tmp_path / "t.csv", n_tracks=2))
    with pytest.raises(DataError, match=r"6 track/artist group\(s\) but 8 fold"):
        make_splits(table, folds=8)
    with pytest.raises(ConfigError, match="unknown split 'album'.*track, artist"):
        make_splits(table, split="album")
    one = read_feature_csv(synthetic_table(tmp_path / "one.csv", classes=("rock",)))
    with pytest.raises(DataError, match="only one class"):
        make_splits(one, folds=2)


def test_leakage_guard_catches_a_shared_track(tmp_path):
    table = read_feature_csv(synthetic_table(tmp_path / "t.csv"))
    rows = np.arange(table.n_rows)
    leaky = SplitPlan("track", [Fold("f", rows[:-1], rows[:0], rows[-2:])], table.tracks, "hand-made")
    with pytest.raises(DataError, match="in both the train and test part"):
        assert_no_leakage(leaky, table)
    plan = make_splits(table, folds=3, seed=1)
    assert_no_leakage(plan, table)
    _assert_grouped(plan, table)


# ---------------------------------------------------------------------------
# The length column, checked against the table's own settings


@pytest.mark.parametrize("value, expected", [
    (30, r"value 30 in column 'length' \(row 2, filename blues.00000.wav\); expected a whole clip's number of "
         r"samples at 22050 Hz, from one STFT frame \(n_fft=2048\) to 134,217,728 \(1.69 h\); in seconds\? "
         r"30 s is 661,500 samples at 22050 Hz"),
    (1, r"value 1 in column 'length'"),
    (1e18, r"value 1e\+18 in column 'length'"),
    (-661500, r"value -661500 in column 'length'"),
    (661500.5, r"value 661500.5 in column 'length'"),
    ("long", r"value 'long' in column 'length'"),
    (2 ** 27 + 1, r"value 134217729 in column 'length'"),
    ("9" * 5000, r"value '9{55}\.\.\.' \(5,000 characters\) "
                 r"in column 'length'"),
])
def test_whole_clip_lengths_must_fit_the_tables_settings(gtzan_dir, tmp_path, run_cli, value, expected):
    """A Kaggle 30-s table whose length is in seconds trained; predict then cut a clip into
    22,059 windows of 30 samples. With length=1e18 every later use said 'corrupt bundle'."""
    frame = pd.read_csv(gtzan_dir / "features_30_sec.csv")
    frame["length"] = frame["length"].astype(object)
    frame.loc[0, "length"] = value
    csv = tmp_path / "t.csv"
    frame.to_csv(csv, index=False)
    with pytest.raises(DataError, match=f"^{csv}: {expected}") as info:
        read_feature_csv(csv)
    assert "\n" not in str(info.value)
    result = run_cli("train", csv, "-m", "knn", "-o", tmp_path / "b", ok=False)
    assert result.exit_code == 1 and "column 'length'" in result.output
    assert not (tmp_path / "b").exists()


def test_clip_length_of_real_tables(gtzan_dir, tmp_path):
    from featx.data.table import clip_length

    whole = read_feature_csv(gtzan_dir / "features_30_sec.csv")
    assert clip_length(whole) == int(np.median(whole.frame["length"])) == 661794
    segments = read_feature_csv(gtzan_dir / "features_3_sec.classical_jazz_rock.csv")
    assert clip_length(segments) is None  # segment rows: every length is the segment's 66149
    frame = segments.frame.copy()
    frame.loc[7, "length"] = 66150
    frame.to_csv(tmp_path / "seg.csv", index=False)
    with pytest.raises(DataError, match=r"value 66150 in column 'length' \(row 9, filename .*\); "
                                        r"expected 66149 samples, the 3-s segment of its settings at 22050 Hz"):
        read_feature_csv(tmp_path / "seg.csv")


def test_lengths_in_parquet_dataframes_and_tables_without_settings(tmp_path):
    from featx.data.frames import table_from_frame

    frame = pd.read_csv(synthetic_table(tmp_path / "t.csv"))
    frame.loc[3, "length"] = 1e18  # no settings: only a whole number of samples up to 2**27
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"value 1000000000000000000 in column 'length' \(row 5, .*from 1 to 134217728"):
        read_feature_csv(tmp_path / "t.csv")
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    with pytest.raises(DataError, match=r"t.parquet: value 1000000000000000000 in column 'length' \(row 4, filename a.00001.0.wav"):
        read_feature_csv(tmp_path / "t.parquet")
    frame.index = [f"r{i}" for i in range(len(frame))]
    frame.attrs["featx_settings"] = {"segment_seconds": None}
    with pytest.raises(DataError, match=r"DataFrame: value 1000000000000000000 in column 'length' \(index 'r3'"):
        table_from_frame(frame.assign(filename=[f"t{i}.wav" for i in range(len(frame))]))


def test_extract_skips_whole_clips_shorter_than_one_stft_frame(tmp_path, tone, write_wav, run_cli):
    write_wav(tmp_path / "audio" / "a" / "short.wav", tone(440, 0.05))  # 1,102 samples
    write_wav(tmp_path / "audio" / "a" / "fine.wav", tone(440, 2.0))
    write_wav(tmp_path / "audio" / "b" / "fine.wav", tone(660, 2.0))
    result = run_cli("extract", tmp_path / "audio", "-o", tmp_path / "w.csv", "--whole-file", "-j", "1", ok=False)
    assert "short.wav: 1102 samples (0.050 s) long, shorter than one STFT frame (n_fft=2048" in result.output
    from featx.data.table import clip_length

    assert clip_length(read_feature_csv(tmp_path / "w.csv")) == 44100


def test_empty_header_cell_is_refused(tmp_path, trained_knn, quiet_code_output):
    import featx

    csv, _ = trained_knn
    lines = csv.read_text().splitlines()
    cells = lines[0].split(",")
    cells[5] = ""
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([",".join(cells), *lines[1:]]) + "\n")
    with pytest.raises(featx.DataError, match=r"column 6 has an empty name"):
        featx.read_feature_csv(bad)
    code, text = quiet_code_output("train", bad, "-m", "knn", "-o", tmp_path / "b", "--folds", "2")
    assert code == 1 and "Traceback" not in text and len(text.strip().splitlines()) == 1, text
    assert str(bad) in text and "column 6 has an empty name" in text
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("value, shown", [("1e308", "1e+308"), ("-1e200", "-1e+200"), ("inf", "inf"),
                                          ("-inf", "-inf"), ("nan", "missing"), ("", "missing")])
def test_absurd_feature_values_name_column_and_row(small_table, tmp_path, value, shown, invoke, one_line_error):
    lines = small_table.read_text().splitlines()
    cells = lines[5].split(",")
    cells[4] = value  # the 'tempo' column, row 5 of the file
    lines[5] = ",".join(cells)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    line = one_line_error(invoke("-q", "train", bad, "-m", "knn", "-o", tmp_path / "out"),
                          "'tempo'", "row 6", shown, str(bad))
    assert cells[0] in line  # the filename of that row
    assert not (tmp_path / "out").exists()


def test_a_header_naming_a_column_twice_is_refused(small_table, tmp_path, invoke, one_line_error):
    lines = small_table.read_text().splitlines()
    header = lines[0].split(",")
    assert header[4] == "tempo"
    header[3] = "tempo"  # pandas would read it as 'tempo' and 'tempo.1'
    twice = tmp_path / "twice.csv"
    twice.write_text("\n".join([",".join(header), *lines[1:]]) + "\n")
    one_line_error(invoke("-q", "train", twice, "-m", "knn", "-o", tmp_path / "out"),
                   "'tempo'", "more than once", str(twice))


def test_single_group_class_warning_and_group_advice(caplog):
    import logging

    from featx.data.splits import _check_labels
    from featx.errors import DataError

    y = np.array(["blues", "rock", "rock", "jazz", "jazz"])
    groups = np.array(["b1", "r1", "r2", "j1", "j2"])
    # the level is set here: an earlier in-process `featx -q` leaves featx's loggers at ERROR
    with caplog.at_level(logging.WARNING, logger="featx"):
        _check_labels(y, groups, 1, "t.csv")
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "'blues' has only 1 group" in text and "1 folds" not in text
    with pytest.raises(DataError, match="more data: training, validation and testing need 3 groups") as info:
        _check_labels(np.array(["a", "b"]), np.array(["g1", "g2"]), 2, "t.csv")
    assert "fewer folds" not in str(info.value)
