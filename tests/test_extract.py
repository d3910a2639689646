"""`featx extract` end to end: output, labels, faults, interruption and resume."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from featx.cli import main

REPO = Path(__file__).resolve().parents[1]

def _default_sigint():
    """Run in the child before exec: Ctrl-C acts as on a terminal even when this test run
    was started with SIGINT ignored (a background job of a non-interactive shell)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)



def run(*args):
    result = CliRunner().invoke(main, ["-q", "extract", *map(str, args)])
    return result


def test_extracts_a_corpus_with_folder_labels(corpus, tmp_path):
    out = tmp_path / "out" / "features.csv"
    result = run(corpus, "-o", out, "-j", "1")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert len(table) == 8  # 4 clips x 2 full 3-s segments (6.5 s each)
    assert table.columns[0] == "filename" and table.columns[-1] == "label"
    assert table.columns[2] == "chroma_stft_mean" and "spectral_contrast1_mean" in table.columns
    assert sorted(set(table["label"])) == ["clicks", "tones"]
    assert table["filename"].iloc[0] == "clicks/clicks.00000.0.wav"  # unique: path under the input
    assert np.isfinite(table.iloc[:, 2:-1].to_numpy()).all()
    record = json.loads((tmp_path / "out" / "features.csv.settings.json").read_text())
    assert record["settings"]["preset"] == "default" and record["rows"] == 8
    assert not (tmp_path / "out" / "features.csv.partial").exists()
    assert not (tmp_path / "out" / "features.errors.csv").exists()


def test_gtzan_preset_whole_file_and_label_options(corpus, tmp_path):
    out = tmp_path / "f30.csv"
    assert run(corpus, "-o", out, "--preset", "gtzan", "--whole-file", "-j", "1").exit_code == 0
    table = pd.read_csv(out)
    kaggle = ["filename", "length", "chroma_stft_mean"]
    assert list(table.columns[:3]) == kaggle and len(table.columns) == 60
    assert table["filename"].tolist()[0] == "clicks.00000.wav"
    assert (table["length"] == int(6.5 * 22050)).all()

    none = tmp_path / "nolabel.csv"
    assert run(corpus, "-o", none, "--labels", "none", "-j", "1").exit_code == 0
    assert "label" not in pd.read_csv(none).columns

    mapping = tmp_path / "labels.csv"
    pd.DataFrame({
        "file": ["tones.00000.wav", "tones.00001.wav", "clicks.00000.wav", "clicks.00001"],
        "label": ["a", "a", "b", "b"],
    }).to_csv(mapping, index=False)
    mapped = tmp_path / "mapped.csv"
    assert run(corpus, "-o", mapped, "--labels", mapping, "-j", "1").exit_code == 0
    assert sorted(set(pd.read_csv(mapped)["label"])) == ["a", "b"]

    pd.DataFrame({"file": ["tones.00000.wav"], "label": ["a"]}).to_csv(mapping, index=False)
    result = run(corpus, "-o", tmp_path / "m2.csv", "--labels", mapping)
    assert result.exit_code != 0 and "no label for 3 of 4" in result.output


@pytest.mark.slow
def test_bad_files_are_skipped_and_reported(corpus, tmp_path, tone, write_wav, invoke):
    (corpus / "tones" / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk" * 50)
    (corpus / "tones" / "empty.wav").write_bytes(b"")
    (corpus / "tones" / "text.ogg").write_text("not audio")
    write_wav(corpus / "clicks" / "short.wav", tone(440, 2.0))
    write_wav(corpus / "tones" / "silent.wav", np.zeros(3 * 22050 + 10, np.float32))
    out = tmp_path / "features.csv"
    result = invoke("extract", corpus, "-o", out, "-j", "2")
    assert result.exit_code == 1, result.stderr
    for name in ("corrupt.wav", "empty.wav", "text.ogg", "short.wav"):
        assert name in result.stderr
    assert "shorter than one 3 s segment" in result.stderr
    errors = pd.read_csv(tmp_path / "features.errors.csv")
    assert sorted(Path(f).name for f in errors["file"]) == ["corrupt.wav", "empty.wav", "short.wav", "text.ogg"]
    assert errors["reason"].str.len().min() > 5
    table = pd.read_csv(out)
    assert len(table) == 9  # 8 segments of the good clips + 1 of the silent file
    assert np.isfinite(table.iloc[:, 2:-1].to_numpy()).all()
    silent = table[table["filename"] == "tones/silent.0.wav"].iloc[0]
    assert silent["rms_mean"] == 0.0


def test_bad_options_get_one_line_errors(corpus, tmp_path):
    cases = [
        (["--segment-seconds", "0"], "positive"),
        (["--segment-seconds", "-3"], "--segment-seconds -3.0"),
        (["--segment-seconds", "abc"], "'abc'"),
        (["--sr", "0"], "--sr 0"),
        (["-j", "0"], "--jobs 0"),
    ]
    for extra, words in cases:
        result = run(corpus, "-o", tmp_path / "x.csv", *extra)
        assert result.exit_code != 0
        assert words in result.output, (extra, result.output)
        assert "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
    (tmp_path / "nothing").mkdir()
    result = run(tmp_path / "nothing", "-o", tmp_path / "x.csv")
    assert result.exit_code != 0 and "no audio files found" in result.output
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    result = run(corpus, "-o", blocker / "x.csv")
    assert result.exit_code != 0 and "cannot be created" in result.output and "file.txt" in result.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_output_folder_not_writable(corpus, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = run(corpus, "-o", locked / "x.csv")
        assert result.exit_code != 0 and "not writable" in result.output
    finally:
        locked.chmod(0o700)


def test_rerun_is_a_no_op_and_other_settings_are_refused(corpus, tmp_path):
    out = tmp_path / "features.csv"
    assert run(corpus, "-o", out, "-j", "1").exit_code == 0
    before = (out.read_bytes(), out.stat().st_mtime_ns)
    again = CliRunner().invoke(main, ["extract", str(corpus), "-o", str(out), "-j", "1"])
    assert again.exit_code == 0 and "up to date" in again.output
    assert (out.read_bytes(), out.stat().st_mtime_ns) == before

    other = run(corpus, "-o", out, "--segment-seconds", "2")
    assert other.exit_code != 0
    assert "segment_seconds: 3.0 there, 2.0 now" in other.output and "--overwrite" in other.output
    assert out.read_bytes() == before[0]  # untouched

    replaced = run(corpus, "-o", out, "--segment-seconds", "2", "--overwrite", "-j", "1")
    assert replaced.exit_code == 0
    assert len(pd.read_csv(out)) == 12  # 3 two-second segments per 6.5 s clip

    foreign = tmp_path / "mine.csv"
    foreign.write_text("a,b\n1,2\n")
    refused = run(corpus, "-o", foreign)
    assert refused.exit_code != 0 and "not made by featx" in refused.output
    assert foreign.read_text() == "a,b\n1,2\n"


@pytest.fixture
def big_corpus(tone, clicks, write_wav):
    """Return ``make(root, n)``: write ``n`` 9.5-s clips of tones and clicks in two genres."""
    def make(root: Path, n: int) -> Path:
        for i in range(n):
            y = tone(200 + 40 * i, 9.5) + clicks(80 + 5 * i, 9.5)
            write_wav(root / ("g1" if i % 2 else "g2") / f"clip.{i:05d}.wav", y)
        return root
    return make


def _journal_records(path: Path) -> int:
    """Complete records (newline-terminated lines after the header) in a journal."""
    return max(0, path.read_bytes().count(b"\n") - 1) if path.exists() else 0


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_run_resumes_to_the_same_result(tmp_path, sig, big_corpus):
    audio = big_corpus(tmp_path / "audio", 20)
    reference = tmp_path / "reference.csv"
    assert run(audio, "-o", reference, "-j", "1").exit_code == 0

    out = tmp_path / "features.csv"
    cmd = [sys.executable, "-m", "featx", "-q", "extract", str(audio), "-o", str(out), "-j", "2"]
    log = tmp_path / "stderr.txt"
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, stderr=err, start_new_session=True,
                                preexec_fn=_default_sigint)
    journal = out.with_name("features.csv.partial")
    deadline = time.time() + 120
    while _journal_records(journal) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() is None, "finished before it could be interrupted"
    proc.send_signal(sig)  # the main process only, as `kill -9 PID` would
    proc.wait(timeout=60)
    try:  # then clear away any worker the killed process left behind
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    stderr = log.read_text()
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "run the same command again" in stderr
    assert not out.exists()  # never half-written
    done = _journal_records(journal)
    assert 2 <= done < 20

    resumed = subprocess.run(cmd[:3] + cmd[4:], cwd=REPO, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{done} from an earlier run" in resumed.stderr
    assert out.read_bytes() == reference.read_bytes()
    assert not journal.exists()


def test_cut_journal_line_is_discarded(tmp_path, big_corpus):
    """A record cut short by a kill mid-write is dropped and its file redone."""
    from threadpoolctl import threadpool_limits

    from featx.extract.corpus import find_corpus
    from featx.extract.runner import _journal_header, _keyed, _work
    from featx.features.settings import FeatureSettings
    from featx.io.journal import Journal

    audio = big_corpus(tmp_path / "audio", 3)
    reference = tmp_path / "reference.csv"
    assert run(audio, "-o", reference, "-j", "1").exit_code == 0

    out = tmp_path / "features.csv"
    journal = out.with_name("features.csv.partial")
    settings = FeatureSettings()
    files = find_corpus([audio])
    j = Journal(journal, _journal_header(settings))
    j.open(fresh=True)
    with threadpool_limits(limits=1):
        first, second = [_keyed(_work(str(f.path), settings), f.id, f.fingerprint()) for f in files[:2]]
    j.append(first)
    j.close()
    with open(journal, "a") as fh:
        fh.write(json.dumps(second)[:500])
    result = CliRunner().invoke(main, ["extract", str(audio), "-o", str(out), "-j", "1"])
    assert result.exit_code == 0, result.output
    assert "1 from an earlier run" in result.output
    assert out.read_bytes() == reference.read_bytes()


def test_extract_never_imports_tensorflow(corpus, tmp_path):
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from featx.cli import main\n"
        f"r = CliRunner().invoke(main, ['-q', 'extract', {str(corpus)!r}, '-o', {str(tmp_path / 'f.csv')!r}, '-j', '1'])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'heavy import'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr


def test_one_file_api_gives_the_numbers_of_featx_extract(tmp_path, tone, clicks, write_wav):
    """extract_features (used by featx predict) pins BLAS to one thread like featx extract does."""
    from featx.extract.file import extract_features
    from featx.features.settings import FeatureSettings

    rng = np.random.default_rng(5)
    y = (0.3 * rng.standard_normal(int(6.5 * 22050)) + tone(330, 6.5) + clicks(128, 6.5)).astype(np.float32)
    audio = write_wav(tmp_path / "audio" / "mix" / "mix.00000.wav", y)
    out = tmp_path / "f.csv"
    result = CliRunner().invoke(main, ["-q", "extract", str(tmp_path / "audio"), "-o", str(out), "-j", "1"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    rows = extract_features(audio, FeatureSettings())
    columns = FeatureSettings().feature_columns()
    assert len(rows) == len(table) == 2
    np.testing.assert_array_equal(rows[columns].to_numpy(), table[columns].to_numpy())


@pytest.mark.slow
def test_absurd_amplitude_is_a_skipped_file_and_quiet_is_silent(tmp_path, write_wav):
    folder = tmp_path / "loud"
    folder.mkdir()
    t = np.arange(22050 * 4) / 22050
    write_wav(folder / "huge.wav", (np.sin(2 * np.pi * 440 * t) * 1e30).astype(np.float32), subtype="FLOAT")
    write_wav(folder / "fine.wav", (np.sin(2 * np.pi * 440 * t) * 0.5).astype(np.float32), subtype="FLOAT")
    # a real process: warnings of its worker processes reach its stderr
    result = subprocess.run([sys.executable, "-m", "featx", "-q", "extract", "loud", "-o", "loud.csv", "-j", "2"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "Warning" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    errors = (tmp_path / "loud.errors.csv").read_text()
    assert "huge.wav" in errors and "amplitude" in errors
    rows = (tmp_path / "loud.csv").read_text().splitlines()
    assert len(rows) > 1 and all("huge.wav" not in r for r in rows)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_wav_declaring_4_hz_is_skipped_by_name_and_the_rest_is_written(corpus, tmp_path, run_cli, jobs, write_stdlib_wav):
    bad = write_stdlib_wav(corpus / "tones" / "tiny_rate.wav", rate=4, frames=40)
    out = tmp_path / "out" / "features.csv"
    started = time.perf_counter()
    result = run_cli("extract", corpus, "-o", out, "-j", jobs, ok=False)
    assert time.perf_counter() - started < 120
    assert result.exit_code == 1, result.output
    assert "tiny_rate.wav" in result.output and "sample rate 4 Hz" in result.output
    table = pd.read_csv(out)
    assert len(table) == 8  # the four good clips, two 3-s segments each
    assert not table["filename"].str.startswith("tiny_rate").any()
    errors = pd.read_csv(out.parent / "features.errors.csv")
    assert len(errors) == 1 and "tiny_rate.wav" in str(errors.iloc[0, 0])
    assert bad.exists()


@pytest.mark.parametrize("args, needles", [
    (["--sr", "100000000"], ["--sr 100000000", "between 1000 and 384000"]),
    (["--sr", "8"], ["--sr 8", "between 1000 and 384000"]),
    (["--sr", "8000"], ["--sr 8000", "preset 'gtzan'"]),
    (["--segment-seconds", "1e-9"], ["--segment-seconds 1e-09", "n_fft=2048"]),
    (["--segment-seconds", "0.05"], ["--segment-seconds 0.05", "1101 sample(s) at 22050 Hz"]),
])
def test_absurd_extraction_options_are_one_line_errors(corpus, tmp_path, run_cli, args, needles, single_line_error):
    out = tmp_path / "out.csv"
    started = time.perf_counter()
    result = run_cli("extract", corpus, "-o", out, "-j", "1", *args, ok=False)
    assert time.perf_counter() - started < 10
    single_line_error(result, *needles)
    assert not out.exists()
