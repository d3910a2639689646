"""Files and folders featx writes: atomic, umask-respecting, never through a symbolic link,
never outside the place asked for, and only what featx can prove it wrote is replaced or deleted.

Everything runs for real: CLI commands through click, real files, real symbolic links, a
real subprocess with a file-size limit standing in for a full disk.
"""
import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from featx.errors import OutputError
from featx.io import guard
from featx.io.atomic import atomic_write, write_error

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(run_cli):
    return run_cli


@pytest.fixture(scope="module")
def table(tmp_path_factory, synthetic_feature_csv):
    """A small separable feature table (3 classes x 6 tracks, one row each)."""
    path = tmp_path_factory.mktemp("data") / "t.csv"
    return synthetic_feature_csv(path, n_tracks=6, n_segments=1, classes=("blues", "jazz", "rock"),
                                 seed=0, separation=2.0, track_spread=0.4, row_spread=0.4)


def train(run, table, out, *extra, model="knn", ok=True):
    return run("train", table, "-m", model, "-o", out, "--folds", "2", *extra, ok=ok)


def snapshot(root: Path) -> dict:
    """``{relative path: bytes or link target}`` of everything under ``root``."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = path.read_bytes()
        else:
            out[rel] = "dir"
    return out


def strip_markers(folder: Path) -> None:
    """Make a featx folder look like one written before folder markers existed."""
    for marker in folder.rglob(guard.MARKER):
        marker.unlink()


# ---------------------------------------------------------------------------
# Data loss: a user's folder is never replaced


def test_train_overwrite_never_replaces_a_folder_featx_did_not_write(tmp_path, table, run):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "metadata.json").write_text('{"title": "My thesis"}\n')
    (thesis / "chapter1.tex").write_text("\\chapter{Introduction}\n")
    before = snapshot(thesis)
    for extra in ((), ("--overwrite",)):
        result = train(run, table, thesis, *extra, ok=False)
        assert "thesis: folder is not empty and was not written by featx; refusing to replace it" \
            in result.output
        assert "the bundle" not in result.output
    # even a metadata.json that claims to be a bundle does not make the folder featx's
    (thesis / "metadata.json").write_text(json.dumps({"format": "featx-bundle"}))
    before = snapshot(thesis)
    result = train(run, table, thesis, "--overwrite", ok=False)
    assert "was not written by featx" in result.output
    assert snapshot(thesis) == before


def test_train_overwrite_replaces_featx_own_bundle_and_keeps_what_a_user_added(tmp_path, table, run):
    out = tmp_path / "bundle"
    train(run, table, out)
    marker = json.loads((out / guard.MARKER).read_text())
    assert marker["format"] == "featx-bundle" and "metadata.json" in marker["files"]
    assert "figures" in marker["folders"]
    refused = train(run, table, out, ok=False)
    assert "pass --overwrite to replace the featx model bundle" in refused.output
    (out / "notes.txt").write_text("my notes on this model")
    (out / "figures" / "my_sketch.png").write_bytes(b"not featx's")
    run("evaluate", out, table, "-o", out / "evaluation" / "again")
    assert (out / "evaluation" / "again" / "metrics.json").exists()

    train(run, table, out, "--overwrite", "-p", "n_neighbors=3")
    train(run, table, out, "--overwrite", "-p", "n_neighbors=1")  # and again: the rerun still works
    assert json.loads((out / "metadata.json").read_text())["params"]["n_neighbors"] == 1
    assert (out / "notes.txt").read_text() == "my notes on this model"
    assert (out / "figures" / "my_sketch.png").read_bytes() == b"not featx's"
    assert not (out / "evaluation").exists()  # the old model's evaluation went with it
    marker = json.loads((out / guard.MARKER).read_text())
    assert "notes.txt" not in marker["files"] and "evaluation" not in marker["folders"]


def test_a_bundle_from_before_markers_is_replaced_only_when_it_holds_nothing_else(tmp_path, table, run):
    out = tmp_path / "old"
    train(run, table, out)
    strip_markers(out)
    (out / "thesis.tex").write_text("not a bundle file")
    before = snapshot(out)
    result = train(run, table, out, "--overwrite", ok=False)
    assert "was not written by featx; refusing to replace it" in result.output
    assert snapshot(out) == before

    (out / "thesis.tex").unlink()
    train(run, table, out, "--overwrite", "-p", "n_neighbors=3")
    assert json.loads((out / "metadata.json").read_text())["params"]["n_neighbors"] == 3
    assert json.loads((out / guard.MARKER).read_text())["format"] == "featx-bundle"


def test_sweep_never_adopts_a_folder_because_it_holds_sweep_json(tmp_path, table, run):
    mine = tmp_path / "mine"
    (mine / "best").mkdir(parents=True)
    (mine / "sweep.json").write_text('{"my": "sweep notes"}')
    (mine / "best" / "model.txt").write_text("my best model")
    (mine / "results.csv").write_text("my,results\n1,2\n")
    before = snapshot(mine)
    result = run("sweep", table, "-m", "knn", "-o", mine, "-p", "n_neighbors=1,3", "--folds", "2", ok=False)
    assert "mine: folder is not empty and was not written by featx; refusing to replace it" in result.output
    assert snapshot(mine) == before


def test_sweep_keeps_a_best_folder_it_did_not_write(tmp_path, table, run):
    out = tmp_path / "sweep"
    args = ["sweep", table, "-m", "knn", "-o", out, "-p", "n_neighbors=1,3", "--folds", "2"]
    run(*args, "--no-retrain-best")
    (out / "best").mkdir()
    (out / "best" / "notes.txt").write_text("mine")
    result = run(*args, ok=False)
    assert "sweep/best: was not written by featx; refusing to delete or replace it" in result.output
    assert (out / "best" / "notes.txt").read_text() == "mine"

    (out / "best" / "notes.txt").unlink()
    (out / "best").rmdir()
    run(*args)
    first = json.loads((out / "best" / "metadata.json").read_text())["sweep"]["trial"]
    # another grid has another best: it is retrained into a fresh best/, replacing featx's own
    run("sweep", table, "-m", "knn", "-o", out, "-p", "n_neighbors=4", "--folds", "2")
    second = json.loads((out / "best" / "metadata.json").read_text())["sweep"]["trial"]
    assert second != first and not (out / ".best.tmp").exists()
    assert "best" in json.loads((out / guard.MARKER).read_text())["folders"]


def test_a_sweep_from_before_markers_is_resumed_only_when_it_holds_nothing_else(tmp_path, table, run):
    out = tmp_path / "sweep"
    args = ["sweep", table, "-m", "knn", "-o", out, "-p", "n_neighbors=1,3", "--folds", "2"]
    run(*args)
    strip_markers(out)
    (out / "best" / "thesis.tex").write_text("mine")
    before = snapshot(out)
    assert "was not written by featx" in run(*args, ok=False).output
    assert snapshot(out) == before
    (out / "best" / "thesis.tex").unlink()
    assert "2 reused, 0 run" in run(*args).output
    assert json.loads((out / guard.MARKER).read_text())["format"] == "featx-sweep"


def test_evaluate_never_writes_into_a_folder_featx_did_not_write(tmp_path, table, run):
    out = tmp_path / "bundle"
    train(run, table, out)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "report.md").write_text("my report")
    result = run("evaluate", out, table, "-o", notes, ok=False)
    assert "notes: folder is not empty and was not written by featx" in result.output
    assert sorted(p.name for p in notes.iterdir()) == ["report.md"]
    run("evaluate", out, table, "-o", tmp_path / "eval")
    run("evaluate", out, table, "-o", tmp_path / "eval")  # featx's own evaluation is replaced


def test_demo_refuses_a_folder_featx_did_not_write(tmp_path, run):
    music = tmp_path / "Music"
    (music / "audio" / "drone").mkdir(parents=True)
    (music / "audio" / "drone" / "drone.00000.wav").write_bytes(b"my recording")
    before = snapshot(music)
    result = run("demo", "-o", music, ok=False)
    assert "Music: folder is not empty and was not written by featx" in result.output
    assert snapshot(music) == before


# ---------------------------------------------------------------------------
# Symbolic links are never written through, nor followed when deleting


def test_atomic_write_refuses_a_symlink_and_leaves_its_target(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "out.csv"
    link.symlink_to(victim)
    with pytest.raises(OutputError, match="out.csv: is a symbolic link; featx does not write"):
        atomic_write(link, "a,b\n")
    assert victim.read_text() == "precious" and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "victim.txt"]  # no temp file left


def test_a_symlinked_output_file_in_a_featx_folder_is_refused(tmp_path, table, run):
    plots = tmp_path / "plots"
    run("plot", "features", table, "-f", "tempo", "-o", plots)
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"precious")
    (plots / "box_tempo.png").unlink()
    (plots / "box_tempo.png").symlink_to(victim)
    result = run("plot", "features", table, "-f", "tempo", "-o", plots, ok=False)
    assert "box_tempo.png: is a symbolic link" in result.output
    assert victim.read_bytes() == b"precious"


def test_extract_refuses_a_symlinked_csv_before_any_work(tmp_path, corpus, run):
    victim = tmp_path / "victim.csv"
    victim.write_text("precious\n")
    link = tmp_path / "features.csv"
    link.symlink_to(victim)
    before = snapshot(tmp_path / "audio")
    for extra in ((), ("--overwrite",)):
        result = run("extract", corpus, "-o", link, *extra, ok=False)
        assert victim.read_text() == "precious\n"
    assert "features.csv: is a symbolic link" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio", "features.csv", "victim.csv"]
    assert snapshot(tmp_path / "audio") == before


def test_a_symlinked_sweep_journal_is_refused(tmp_path, table, run):
    out = tmp_path / "sweep"
    args = ["sweep", table, "-m", "knn", "-o", out, "-p", "n_neighbors=1", "--folds", "2", "--no-retrain-best"]
    run(*args)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (out / "trials.jsonl").unlink()
    (out / "trials.jsonl").symlink_to(victim)
    result = run(*args, ok=False)
    assert "trials.jsonl" in result.output and "link" in result.output
    assert victim.read_text() == "precious\n"


def test_a_symlinked_output_folder_is_refused(tmp_path, table, run):
    real = tmp_path / "real"
    train(run, table, real)
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    before = snapshot(real)
    result = train(run, table, link, "--overwrite", ok=False)
    assert "link: is a symbolic link" in result.output
    assert snapshot(real) == before


def test_clearing_a_folder_never_follows_links(tmp_path):
    users = tmp_path / "users"
    users.mkdir()
    (users / "keep.txt").write_text("keep")
    out = guard.claim_folder(tmp_path / "out", "featx-output")
    atomic_write(out / "a.txt", "featx")
    atomic_write(guard.make_folder(out / "sub") / "b.txt", "featx")
    # someone swaps featx's file and sub-folder for links to their own things
    (out / "a.txt").unlink()
    (out / "a.txt").symlink_to(users / "keep.txt")
    (out / "sub" / "b.txt").unlink()
    (out / "sub" / guard.MARKER).unlink()
    (out / "sub").rmdir()
    (out / "sub").symlink_to(users, target_is_directory=True)
    with pytest.raises(OutputError, match="(a.txt|sub): was not written by featx; refusing to delete"):
        guard.remove_folder(out)
    kept = guard.clear_folder(out)
    assert {p.name for p in kept} == {"a.txt", "sub"}
    assert (users / "keep.txt").read_text() == "keep" and (out / "a.txt").is_symlink()
    assert (out / "sub").is_symlink()


# ---------------------------------------------------------------------------
# File names made from data stay inside -o and are distinct


def test_a_column_named_like_a_path_stays_inside_the_output_folder(tmp_path, table, run):
    frame = pd.read_csv(table)
    frame = frame.rename(columns={"f_b": "../../x", "tempo": "/tmp/abs"})
    data = tmp_path / "in" / "cols.csv"
    data.parent.mkdir()
    frame.to_csv(data, index=False)
    out = tmp_path / "a" / "b" / "plots"
    before = set(tmp_path.rglob("*"))
    result = run("plot", "features", data, "-f", "../../x", "-f", "/tmp/abs", "-o", out)
    new = set(tmp_path.rglob("*")) - before
    figures = [p for p in new if p.is_file() and p.name != guard.MARKER]
    assert all(p.parent == out for p in figures), sorted(map(str, new))
    assert all(p == out or p in out.parents for p in new if p.is_dir())
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["box_tmp_abs.png", "box_x.png"]
    assert result.output.split() == [str(out / "box_x.png"), str(out / "box_tmp_abs.png")]
    assert not Path("/tmp/abs.png").exists() and not (tmp_path / "x.png").exists()


def test_plot_audio_gives_files_with_the_same_stem_their_own_figures(tmp_path, tone, write_wav, run):
    jazz = write_wav(tmp_path / "music" / "jazz" / "01.wav", tone(440, 1.0))
    rock = write_wav(tmp_path / "music" / "rock" / "01.wav", tone(220, 1.0))
    out = tmp_path / "plots"
    run("plot", "audio", jazz, rock, "-o", out)
    assert sorted(p.name for p in out.glob("*.png")) == ["jazz_01.png", "rock_01.png"]
    assert (out / "jazz_01.png").read_bytes() != (out / "rock_01.png").read_bytes()


def test_plot_refuses_a_folder_featx_did_not_write(tmp_path, table, run):
    pictures = tmp_path / "Pictures"
    pictures.mkdir()
    (pictures / "box_tempo.png").write_bytes(b"my holiday")
    result = run("plot", "features", table, "-f", "tempo", "-o", pictures, ok=False)
    assert "Pictures: folder is not empty and was not written by featx" in result.output
    assert (pictures / "box_tempo.png").read_bytes() == b"my holiday"


def test_safe_and_distinct_names():
    assert guard.safe_name("../../x") == "x"
    assert guard.safe_name("..") == "unnamed"
    assert guard.safe_name("a/b\\c d") == "a_b_c_d"
    assert guard.unique_names(["a", "A", "a"], suffix=".png") == ["a.png", "A-2.png", "a-3.png"]
    assert guard.names_for_paths(["x/1.wav", "y/2.wav"]) == ["1", "2"]
    assert guard.names_for_paths(["r/AlbumA/01.mp3", "r/AlbumB/01.mp3"]) == ["AlbumA_01", "AlbumB_01"]


# ---------------------------------------------------------------------------
# Permissions follow the umask; a full disk is one line


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_written_files_follow_the_umask(tmp_path, table, run, umask, mode):
    old = os.umask(umask)
    try:
        out = tmp_path / "bundle"
        train(run, table, out)
        single = atomic_write(tmp_path / "one.txt", "x")
    finally:
        os.umask(old)
    files = [p for p in out.rglob("*") if p.is_file()] + [single]
    assert len(files) > 6
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {oct(mode)}


def test_a_full_disk_is_one_line_naming_the_file_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "big.csv"
    target.write_text("old content\n")
    script = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        from featx.errors import OutputError
        from featx.io.atomic import atomic_write
        try:
            atomic_write({str(target)!r}, "x" * 100000)
        except OutputError as exc:
            print(exc)
            sys.exit(3)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 3, done.stderr
    assert done.stdout.startswith(f"{target}: cannot write: file too large") and "Traceback" not in done.stderr
    assert target.read_text() == "old content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv"]
    full = write_error(target, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert str(full).startswith(f"{target}: cannot write: no space left on the device")
    assert "\n" not in str(full)


def test_markers_list_what_featx_wrote_and_refuse_unlisted_replacements(tmp_path):
    out = guard.claim_folder(tmp_path / "out", "featx-output")
    atomic_write(out / "mine.txt", "1")
    (out / "users.txt").write_text("user")
    with pytest.raises(OutputError, match="users.txt: exists and was not written by featx"):
        atomic_write(out / "users.txt", "2")
    atomic_write(out / "mine.txt", "2")
    assert (out / "mine.txt").read_text() == "2" and (out / "users.txt").read_text() == "user"
    assert json.loads((out / guard.MARKER).read_text())["files"] == ["mine.txt"]
    guard.clear_folder(out)
    assert sorted(p.name for p in out.iterdir()) == [guard.MARKER, "users.txt"]
    with pytest.raises(OutputError, match="users.txt: was not written by featx"):
        guard.remove_folder(out)
    assert (out / "users.txt").read_text() == "user"


@pytest.mark.parametrize("key,entry", [
    ("files", "../victim/precious.txt"),
    ("files", "ABSOLUTE"),
    ("folders", "../victim"),
    ("files", "lnk/precious.txt"),
    ("scratch", "ABSOLUTE_DIR"),
    ("files", ""),
])
def test_tampered_marker_deletes_nothing(tmp_path, trained_knn, key, entry, quiet_code_output):
    csv, _ = trained_knn
    victim = tmp_path / "victim"
    victim.mkdir()
    precious = victim / "precious.txt"
    precious.write_text("keep me")
    out = tmp_path / "bundle"
    code, text = quiet_code_output("train", csv, "-m", "knn", "-o", out, "--folds", "2")
    assert code == 0, text
    (out / "lnk").symlink_to(victim, target_is_directory=True)
    entry = {"ABSOLUTE": str(precious), "ABSOLUTE_DIR": str(victim)}.get(entry, entry)
    marker_path = out / ".featx.json"
    marker = json.loads(marker_path.read_text())
    marker[key] = marker[key] + [entry]
    marker_path.write_text(json.dumps(marker))
    before = sorted(p.name for p in out.iterdir())

    code, text = quiet_code_output("train", csv, "-m", "knn", "-o", out, "--folds", "2", "--overwrite")
    assert code == 1, text
    assert "Traceback" not in text
    assert len(text.strip().splitlines()) == 1, text
    assert "corrupt marker" in text and str(marker_path) in text
    assert precious.read_text() == "keep me"
    assert sorted(p.name for p in out.iterdir()) == before


def test_listed_link_is_never_followed(tmp_path):
    from featx.io.guard import claim_folder, clear_folder

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    out = claim_folder(tmp_path / "out", "featx-output")
    (out / "link.txt").symlink_to(victim / "keep.txt")
    (out / "dirlink").symlink_to(victim, target_is_directory=True)
    marker = json.loads((out / ".featx.json").read_text())
    marker["files"].append("link.txt")
    marker["folders"].append("dirlink")
    (out / ".featx.json").write_text(json.dumps(marker))
    clear_folder(out)
    assert (victim / "keep.txt").read_text() == "keep"
    assert (out / "dirlink").is_symlink()
