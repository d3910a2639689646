"""featx serve: a real server process on a free loopback port, real GTZAN audio posted
over HTTP, the answers checked against ``featx predict``; its limits, its queue under
32 simultaneous requests, its signals, and its page in headless Chromium."""
from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi", reason="featx serve needs the serve extra: pip install 'featx[serve]'")

JAZZ = Path("audio") / "jazz" / "jazz.00000.wav"
CLASSICAL = Path("audio") / "classical" / "classical.00001.wav"
ROCK_FREE = Path("audio") / "metal" / "metal.00000.wav"


# ---------------------------------------------------------------------------
# fixtures: a bundle trained on real GTZAN features, a server process, HTTP


@pytest.fixture(scope="module")
def bundle(gtzan_dir, run_cli, tmp_path_factory) -> Path:
    """A k-NN model trained on the real 3-s GTZAN rows of classical, jazz and rock."""
    out = tmp_path_factory.mktemp("serve") / "knn"
    run_cli("train", gtzan_dir / "features_3_sec.classical_jazz_rock.csv", "--model", "knn",
            "--folds", "2", "-o", out)
    return out


class Server:
    """A ``featx serve`` process; its URL, its log and its private temporary folder."""

    def __init__(self, bundle: Path, tmp: Path, *args):
        self.tmp = tmp
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.log = tmp / "server.log"
        env = {**os.environ, "TMPDIR": str(tmp)}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "featx", "serve", str(bundle), "--port", "0", *args],
                                         stdout=log, stderr=subprocess.STDOUT, env=env)
        self.url = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.proc.poll() is None:
            text = self.log.read_text(errors="replace")
            if "Application startup complete" in text:
                self.url = next(w for w in text.split() if w.startswith("http://127.0.0.1:")).rstrip("/")
                break
            time.sleep(0.2)
        assert self.url is not None, self.log.read_text(errors="replace")
        host = urlsplit(self.url)
        self.host, self.port = host.hostname, host.port

    def upload_folders(self) -> list[Path]:
        return sorted(self.tmp.glob("featx-serve-*"))

    def rss_kib(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) of the server process, in KiB."""
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])

    def stop(self, signum=signal.SIGINT, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        return self.proc.wait(timeout)


def request(server: Server, method: str, path: str, body: bytes = b"", headers: dict | None = None,
            timeout: float = 300):
    """``(status, headers, body as JSON or text)`` of one HTTP request to ``server``."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    kind = response.getheader("content-type", "")
    return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(data) if "json" in kind else data.decode()


def multipart(data: bytes, filename: str, field: str = "file") -> tuple[bytes, dict]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def raw_post(server: Server, body: bytes, headers: dict, *, chunked: bool, piece: int = 2**16):
    """POST ``body`` to /predict over a bare socket, stopping as soon as an answer arrives:
    ``(status, JSON answer, body bytes sent by then)``. ``chunked``: no declared length."""
    import select
    import socket

    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {len(body)}\r\n"
    sock = socket.create_connection((server.host, server.port), timeout=60)
    with sock:
        sock.sendall(f"POST /predict HTTP/1.1\r\nHost: {server.host}\r\n{head}\r\n".encode())
        if not chunked:  # the answer to a declared length comes before any of the body is sent
            select.select([sock], [], [], 10)
        sent = 0
        while sent < len(body) and not select.select([sock], [], [], 0)[0]:
            part = body[sent:sent + piece]
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
            except (BrokenPipeError, ConnectionResetError):  # refused meanwhile
                break
            sent += len(part)
        received = b""
        while True:  # a refused upload's answer closes the connection (a reset: the rest was not read)
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    assert received, f"no answer after {sent} bytes of the body"
    status = int(received.split(b" ", 2)[1])
    return status, json.loads(received.split(b"\r\n\r\n", 1)[1]), sent


def post_file(server: Server, path: Path, name: str | None = None, query: str = ""):
    body, headers = multipart(Path(path).read_bytes(), name or Path(path).name)
    return request(server, "POST", "/predict" + query, body, headers)


@pytest.fixture(scope="module")
def server(bundle, tmp_path_factory):
    """One server for the module's API tests: 1 worker, 2 waiting, 4 MiB uploads, 40-s audio."""
    srv = Server(bundle, tmp_path_factory.mktemp("server"), "--workers", "1", "--queue", "2",
                 "--max-upload-mb", "4", "--max-seconds", "40")
    yield srv
    status = srv.stop(signal.SIGINT)
    log = srv.log.read_text(errors="replace")
    assert status == 130, log  # Ctrl-C: featx's usual status, and one line saying so
    assert log.rstrip().endswith("serve: interrupted; server stopped") and "Traceback" not in log
    assert srv.upload_folders() == []  # the private upload folder is removed at shutdown


@pytest.fixture(scope="module")
def predicted(bundle, gtzan_dir, run_cli, tmp_path_factory):
    """What ``featx predict -f json --timeline`` says of the jazz and classical clips."""
    timeline = tmp_path_factory.mktemp("predicted") / "timeline.csv"
    clips = [gtzan_dir / JAZZ, gtzan_dir / CLASSICAL]
    rows = json.loads(run_cli("predict", bundle, *clips, "-f", "json", "--timeline", timeline).output)
    return {Path(row["file"]).name: row for row in rows}, pd.read_csv(timeline)


# ---------------------------------------------------------------------------
# the answers


@pytest.mark.slow
def test_predict_equals_featx_predict(server, predicted, gtzan_dir):
    rows, timeline = predicted
    classes = list(rows["jazz.00000.wav"]["probabilities"])
    for clip in (JAZZ, CLASSICAL):
        status, headers, answer = post_file(server, gtzan_dir / clip, query="?spectrogram=true")
        assert status == 200, answer
        expected = rows[clip.name]
        assert answer["file"] == clip.name and answer["genre"] == expected["genre"]
        assert list(answer["probabilities"]) == classes
        np.testing.assert_allclose([answer["probabilities"][c] for c in classes],
                                   [expected["probabilities"][c] for c in classes], rtol=0, atol=1e-6)
        assert [t["genre"] for t in answer["top"]] == [t["genre"] for t in expected["top"]]
        assert answer["duration"] == pytest.approx(30.0, abs=0.1)
        # the windows are the rows of featx predict --timeline (written to 6 decimals), and average to the file's row
        mine = timeline[timeline["file"].map(lambda f: Path(f).name) == clip.name]
        assert answer["n_windows"] == len(answer["windows"]) == len(mine) == 10
        window_proba = np.array([[w["probabilities"][c] for c in classes] for w in answer["windows"]])
        np.testing.assert_allclose(window_proba, mine[classes].to_numpy(), rtol=0, atol=1e-6)
        np.testing.assert_allclose([w["start"] for w in answer["windows"]], mine["start"], atol=1e-6)
        np.testing.assert_allclose(window_proba.mean(axis=0), [answer["probabilities"][c] for c in classes], atol=1e-9)
        mel = answer["spectrogram"]
        assert mel["n_mels"] == 128 and 0 < mel["columns"] <= 1200
        assert mel["columns"] * mel["seconds_per_column"] == pytest.approx(30.0, abs=1.0)
        assert headers["x-content-type-options"] == "nosniff"
    assert server.upload_folders() and not any(server.upload_folders()[0].iterdir())  # uploads removed


@pytest.mark.slow
def test_model_health_docs_and_page(server):
    status, _, model = request(server, "GET", "/model")
    assert status == 200 and model["model"] == "knn" and model["genres"] == ["classical", "jazz", "rock"]
    assert model["training_data"]["file"] == "features_3_sec.classical_jazz_rock.csv"
    assert model["training_data"]["tracks"] == 300 and model["max_seconds"] == 40.0
    assert 0.5 < model["metrics"]["track"]["accuracy"] <= 1.0 and model["server"]["workers"] == 1
    status, _, health = request(server, "GET", "/health")
    assert status == 200 and health["status"] == "ok"
    status, headers, page = request(server, "GET", "/")
    assert status == 200 and "<canvas id=\"timeline\"" in page
    assert "default-src 'none'" in headers["content-security-policy"]
    assert "http://" not in page and "https://" not in page  # nothing loaded from elsewhere
    status, _, docs = request(server, "GET", "/docs")
    assert status == 200 and "/docs/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    status, _, script = request(server, "GET", "/docs/swagger-ui-bundle.js")
    assert status == 200 and len(script) > 100_000
    status, _, spec = request(server, "GET", "/openapi.json")
    assert status == 200 and "/predict" in spec["paths"]


@pytest.mark.slow
def test_refusals_are_one_line_json(server, gtzan_dir, tmp_path):
    import soundfile as sf

    # longer than --max-seconds 40: two real clips end to end (45 s)
    y, sr = sf.read(gtzan_dir / JAZZ, dtype="float32")
    long_wav = tmp_path / "long.wav"
    sf.write(long_wav, np.concatenate([y, y[: 15 * sr]]), sr)
    status, _, answer = post_file(server, long_wav)
    assert status == 422 and "long.wav" in answer["detail"] and "40 s" in answer["detail"]
    assert str(tmp_path) not in answer["detail"]
    # undecodable bytes
    junk = tmp_path / "junk.wav"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    status, _, answer = post_file(server, junk)
    assert status == 415 and answer["detail"].startswith("junk.wav: cannot be decoded as audio")
    # over --max-upload-mb 4: a declared length is refused before the body is sent; a body of
    # unknown length (chunked) as soon as it passes the limit, long before all of it is sent
    body, headers = multipart(b"\0" * (40 * 2**20), "big.wav")
    status, answer, sent = raw_post(server, body, headers, chunked=False)
    assert status == 413 and "4 MB" in answer["detail"] and sent == 0
    status, answer, sent = raw_post(server, body, headers, chunked=True)
    # (what the sockets' buffers hold besides the 4 MiB read is sent too: a few MiB on loopback)
    assert status == 413 and "4 MB" in answer["detail"] and 4 * 2**20 < sent < 20 * 2**20, sent
    # no field 'file'; not a form at all
    body, headers = multipart(b"abc", "x.wav", field="audio")
    status, _, answer = request(server, "POST", "/predict", body, headers)
    assert status == 400 and "no field 'file'" in answer["detail"]
    status, _, answer = request(server, "POST", "/predict", b"{}", {"Content-Type": "application/json"})
    assert status == 415 and "multipart/form-data" in answer["detail"]
    status, _, answer = request(server, "GET", "/nowhere")
    assert status == 404 and set(answer) == {"detail"}
    for detail in (answer["detail"],):
        assert "\n" not in detail and "Traceback" not in detail
    assert "Traceback" not in server.log.read_text(errors="replace")
    assert not any(server.upload_folders()[0].iterdir())


@pytest.mark.slow
def test_32_simultaneous_requests_are_answered_or_refused_with_503(server, predicted, gtzan_dir):
    rows, _ = predicted
    expected = rows["jazz.00000.wav"]["probabilities"]
    data = (gtzan_dir / JAZZ).read_bytes()
    rss_before, _ = server.rss_kib()
    start = threading.Barrier(32)
    answers = [None] * 32
    peak = [0]

    def client(i):
        body, headers = multipart(data, f"jazz-{i}.wav")
        start.wait()
        answers[i] = request(server, "POST", "/predict", body, headers)

    def watch():
        while any(t.is_alive() for t in threads):
            peak[0] = max(peak[0], server.rss_kib()[0])
            time.sleep(0.02)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    watcher = threading.Thread(target=watch)
    watcher.start()
    for t in threads:
        t.join(300)
    watcher.join()
    statuses = [a[0] for a in answers]
    assert set(statuses) <= {200, 503}, statuses
    assert 1 <= statuses.count(200) < 32  # 1 worker + 2 waiting: most of a burst of 32 is refused
    for status, headers, answer in answers:
        if status == 200:
            assert answer["file"].startswith("jazz-")
            np.testing.assert_allclose(list(answer["probabilities"].values()), list(expected.values()), atol=1e-6)
        else:
            assert headers["retry-after"] == "2" and "busy" in answer["detail"]
    # at most 3 uploads in the server at once: its memory grows by little (measured: see docs/guide/serve.rst)
    grown_mib = (peak[0] - rss_before) / 1024
    print(f"RSS before {rss_before / 1024:.0f} MiB, peak {peak[0] / 1024:.0f} MiB during 32 requests "
          f"({statuses.count(200)} answered, {statuses.count(503)} refused)")
    assert grown_mib < 200, grown_mib
    assert not any(server.upload_folders()[0].iterdir())
    status, _, answer = post_file(server, gtzan_dir / JAZZ)  # the queue is free again
    assert status == 200


@pytest.mark.slow
@pytest.mark.parametrize("name, workers", [("mlp", 2), ("knn-multi", 1), ("seglstm", 2)])
def test_keras_and_multi_label_bundles_answer_as_predict_does(name, workers, bundles_0_1_0, gtzan_dir,
                                                              run_cli, tmp_path):
    """A Keras network on 30-s rows (two analyses at once in threads sharing it), a multi-label
    k-NN, and a Keras segment sequence model: each answers what featx predict says."""
    bundle = bundles_0_1_0 / name
    clips = [gtzan_dir / JAZZ, gtzan_dir / CLASSICAL]
    expected = {Path(r["file"]).name: r for r in json.loads(run_cli("predict", bundle, *clips, "-f", "json").output)}
    srv = Server(bundle, tmp_path / "srv", "--workers", str(workers))
    try:
        answers = {}
        threads = [threading.Thread(target=lambda c=c: answers.__setitem__(c.name, post_file(srv, c))) for c in clips]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        for clip in clips:
            status, _, answer = answers[clip.name]
            assert status == 200, answer
            want = expected[clip.name]
            assert answer["genre"] == want["genre"] and answer.get("genres") == want.get("genres")
            classes = list(want["probabilities"])
            np.testing.assert_allclose([answer["probabilities"][c] for c in classes],
                                       [want["probabilities"][c] for c in classes], atol=1e-6)
            assert answer["n_windows"] == (1 if name != "seglstm" else 10)
    finally:
        assert srv.stop() == 130


@pytest.fixture(scope="module")
def image_bundle(gtzan_dir, run_cli, tmp_path_factory) -> Path:
    """A tiny cnn2d trained on the mel images of the real jazz and classical clips, through
    ``featx spectrograms`` and ``featx train`` (2 folds, 2 epochs)."""
    root = tmp_path_factory.mktemp("serve-images")
    for genre in ("jazz", "classical"):
        shutil.copytree(gtzan_dir / "audio" / genre, root / "audio" / genre)
    run_cli("spectrograms", root / "audio", "-o", root / "store", "--kinds", "mel", "--n-mels", "32", "-j", "1")
    run_cli("train", root / "store", "-m", "cnn2d", "-o", root / "cnn2d", "--folds", "2", "--epochs", "2",
            "--batch-size", "8", "--valid-fraction", "0", "-p", "filters=4,4", "-p", "dense=8")
    return root / "cnn2d"


@pytest.mark.slow
def test_an_image_bundle_answers_as_predict_does(image_bundle, gtzan_dir, run_cli, tmp_path):
    """A spectrogram network: each 3-s segment's mel image classified, the segments pooled by
    mean, the same numbers as featx predict, and the timeline one window per segment."""
    clips = [gtzan_dir / JAZZ, gtzan_dir / ROCK_FREE]
    expected = {Path(r["file"]).name: r
                for r in json.loads(run_cli("predict", image_bundle, *clips, "-f", "json").output)}
    srv = Server(image_bundle, tmp_path / "srv")
    try:
        for clip in clips:
            status, _, answer = post_file(srv, clip)
            assert status == 200, answer
            want = expected[clip.name]
            assert answer["genre"] == want["genre"]
            assert set(answer["probabilities"]) == {"classical", "jazz"}
            np.testing.assert_allclose([answer["probabilities"][c] for c in ("classical", "jazz")],
                                       [want["probabilities"][c] for c in ("classical", "jazz")], atol=1e-5)
            assert answer["n_windows"] == 10 == len(answer["windows"])
    finally:
        assert srv.stop() == 130


# ---------------------------------------------------------------------------
# signals, the command line


@pytest.mark.slow
def test_sigterm_stops_the_server_cleanly(bundle, tmp_path):
    srv = Server(bundle, tmp_path / "term")
    assert len(srv.upload_folders()) == 1 and oct(srv.upload_folders()[0].stat().st_mode & 0o777) == "0o700"
    assert srv.stop(signal.SIGTERM) == 143
    log = srv.log.read_text(errors="replace")
    assert "Application shutdown complete" in log and "Traceback" not in log
    assert srv.upload_folders() == []


def test_without_the_extra_serve_says_the_install_command(tmp_path):
    code = ("import sys; sys.modules['fastapi'] = None\n"
            "from featx.cli.main import main\n"
            f"main(['serve', {str(tmp_path)!r}])\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == ("Error: featx serve needs fastapi, not installed here: "
                                     "pip install 'featx[serve]'")


def test_a_busy_port_is_one_line(tmp_path, run_cli):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", tmp_path, "--port", port, ok=False)
    assert f"cannot listen on --host 127.0.0.1 --port {port}: the port is in use" in result.output


# ---------------------------------------------------------------------------
# the page, in a real headless browser


@pytest.fixture
def chromium(tmp_path):
    """Selenium driving Debian's headless chromium (skipped, saying why, where it is missing)."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="the page test needs selenium (featx[test])")
    browser, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver_path is None:
        pytest.skip("the page test needs Debian's chromium and chromium-driver: apt-get install chromium "
                    "chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    yield driver
    driver.quit()


@pytest.mark.slow
def test_the_page_shows_genres_timeline_and_spectrogram(server, chromium, gtzan_dir, predicted, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    rows, _ = predicted
    chromium.get(server.url + "/")
    WebDriverWait(chromium, 30).until(lambda d: "knn" in d.find_element(By.ID, "model").text)
    assert "Up to 4 MB and 40 s of audio" in chromium.find_element(By.ID, "limits").text
    # refusals are said on the page: undecodable bytes (the server's 415), a file over the size limit
    junk, big = tmp_path / "junk.wav", tmp_path / "big.wav"
    junk.write_bytes(np.random.default_rng(1).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    big.write_bytes(b"\0" * (5 * 2**20))
    status = chromium.find_element(By.ID, "status")
    chromium.find_element(By.ID, "file").send_keys(str(junk))
    WebDriverWait(chromium, 60).until(lambda d: "Not analysed (415): junk.wav: cannot be decoded" in status.text)
    chromium.find_element(By.ID, "file").send_keys(str(big))
    WebDriverWait(chromium, 10).until(lambda d: "big.wav is 5.0 MB, larger than the 4 MB" in status.text)
    chromium.find_element(By.ID, "file").send_keys(str(gtzan_dir / JAZZ))
    WebDriverWait(chromium, 120).until(ready.visibility_of_element_located((By.ID, "top")))
    WebDriverWait(chromium, 120).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#top li")) == 3)
    top = [li.text for li in chromium.find_elements(By.CSS_SELECTOR, "#top li")]
    best = rows["jazz.00000.wav"]["top"][0]
    assert best["genre"] in top[0] and f"{100 * best['probability']:.1f}%" in top[0], top
    assert "jazz.00000.wav" in chromium.find_element(By.ID, "result-title").text
    # both canvases are drawn on (not blank), and the audio element holds the dropped file
    drawn = """const c = document.getElementById(arguments[0]); if (!c.width) return 0;
               const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
               const seen = new Set(); for (let i = 0; i < d.length; i += 4 * 97) seen.add(d[i] + ',' + d[i+1] + ',' + d[i+2]);
               return seen.size;"""
    assert chromium.execute_script(drawn, "timeline") > 3
    assert chromium.execute_script(drawn, "mel") > 3
    assert chromium.find_element(By.ID, "player").get_attribute("src").startswith("blob:")
    # keyboard: the focused timeline steps through the windows with the arrow keys
    from selenium.webdriver.common.keys import Keys

    timeline = chromium.find_element(By.ID, "timeline")
    chromium.execute_script("arguments[0].focus()", timeline)
    timeline.send_keys(Keys.ARROW_RIGHT)
    WebDriverWait(chromium, 10).until(lambda d: "Window 2 of 10" in d.find_element(By.ID, "readout").text)
    shot = Path(os.environ.get("FEATX_SCREENSHOT_DIR", tmp_path)) / "serve_page.png"
    chromium.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    # no script error (the 415 of the junk file is logged as a network error: that one is expected)
    assert not [e for e in chromium.get_log("browser") if e["level"] == "SEVERE" and e["source"] != "network"]


# ---------------------------------------------------------------------------
# the page's spectrogram


def test_mel_overview_is_librosas_mel_spectrogram_in_db(gtzan_dir):
    librosa = pytest.importorskip("librosa")
    from featx.extract.audio import load
    from featx.serve.spectrogram import encode_overview, mel_overview, overview_settings

    settings = overview_settings(None, 22050)
    y = load(gtzan_dir / JAZZ, sr=22050)[: 22050 * 8]
    mel_db, per_column = mel_overview(y, settings=settings, width=10_000)
    assert per_column == 1
    expected = librosa.power_to_db(librosa.feature.melspectrogram(
        y=y, sr=22050, n_fft=settings.n_fft, hop_length=settings.hop_length, n_mels=settings.n_mels,
        fmax=settings.fmax), ref=1.0, top_db=80.0)
    assert mel_db.shape == expected.shape
    np.testing.assert_allclose(mel_db, expected, atol=0.05)
    # averaged down to at most 200 columns: each column is the mean power of its frames
    small, per_column = mel_overview(y, settings=settings, width=200)
    assert small.shape[1] <= 200 and per_column == int(np.ceil(expected.shape[1] / 200))
    power = librosa.db_to_power(mel_db)[:, :per_column].mean(axis=1)
    np.testing.assert_allclose(small[:, 0], np.maximum(librosa.power_to_db(power), small.max() - 80), atol=0.05)
    packed = encode_overview(small, settings=settings, frames_per_column=per_column)
    assert packed["columns"] == small.shape[1] and len(packed["data"]) == 4 * int(np.ceil(small.size / 3))
