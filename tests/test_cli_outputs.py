"""Where the commands write: never onto one of their inputs, never inside a featx folder, and
a missing folder is one line."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


def test_predict_output_onto_its_input_csv_is_refused(tmp_path, trained_knn, quiet_code_output):
    csv, bundle = trained_knn
    copy = tmp_path / "few.csv"
    copy.write_bytes(csv.read_bytes())
    code, text = quiet_code_output("predict", bundle, copy, "-o", copy, "-f", "csv")
    assert code == 1 and "Traceback" not in text and len(text.strip().splitlines()) == 1, text
    assert "is one of the inputs" in text
    assert copy.read_bytes() == csv.read_bytes()


def test_predict_output_inside_a_bundle_is_refused(tmp_path, trained_knn, quiet_code_output):
    csv, bundle = trained_knn
    metadata = (bundle / "metadata.json").read_bytes()
    for target in (bundle / "metadata.json", bundle / "new.csv"):
        code, text = quiet_code_output("predict", bundle, csv, "-o", target, "-f", "csv")
        assert code == 1 and "Traceback" not in text and len(text.strip().splitlines()) == 1, text
        assert "inside the featx model bundle" in text
    assert (bundle / "metadata.json").read_bytes() == metadata
    assert not (bundle / "new.csv").exists()
    code, text = quiet_code_output("predict", bundle, csv, "-o", tmp_path / "preds.csv", "-f", "csv")
    assert code == 0, text
    assert (tmp_path / "preds.csv").read_text().count("\n") == 17


def test_extract_output_onto_its_labels_csv_is_refused(tmp_path, corpus, quiet_code_output):
    labels = tmp_path / "labels.csv"
    labels.write_text("file,label\ntones.00000.wav,a\ntones.00001.wav,a\n"
                      "clicks.00000.wav,b\nclicks.00001.wav,b\n")
    before = labels.read_text()
    code, text = quiet_code_output("extract", corpus, "-o", labels, "--labels", labels, "-j", "1")
    assert code == 1 and "Traceback" not in text and len(text.strip().splitlines()) == 1, text
    assert "is one of the inputs" in text
    assert labels.read_text() == before


def test_predict_into_a_missing_folder_is_one_line(small_bundles, small_table, invoke, one_line_error):
    target = Path("/no/such/dir/p.csv")
    one_line_error(invoke("-q", "predict", small_bundles["knn"], small_table, "-o", target), str(target.parent))
    assert not target.parent.exists()


def test_predict_output_is_written_where_asked(small_bundles, small_table, tmp_path, invoke):
    target = tmp_path / "p.csv"
    result = invoke("-q", "predict", small_bundles["knn"], small_table, "-f", "csv", "-o", target)
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(target)) == 16
