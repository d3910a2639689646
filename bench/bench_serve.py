"""featx serve: requests/s and p50/p99 latency for one 30-s clip, 1 and 2 workers, beside featx predict's work.

Three ways to classify the same real 30-s GTZAN clip, alternated round by round:

* ``predict``: ``Bundle.classify_audio([clip])`` in a loop in this process (what
  ``featx predict`` does per file, with the model loaded once): the baseline;
* ``serve-1w`` and ``serve-2w``: ``featx serve --workers 1`` / ``--workers 2`` (each its own
  process, started once), posted the clip by a client in another process that keeps
  ``--concurrency`` requests in flight over HTTP.

Each round runs ``--requests`` analyses per way. Printed per way: requests/s and the p50
and p99 latency (median over rounds, with min-max), and requests/s as a ratio to the
baseline of the same round (median, min-max).

    python bench/bench_serve.py                              # knn on the 3-s rows, 3 rounds of 20
    python bench/bench_serve.py --bundle MODEL --rounds 5 --requests 40
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


# ---------------------------------------------------------------------------
# the client (run in its own process: python bench_serve.py --client ...)


def _post(host: str, port: int, body: bytes, content_type: str) -> tuple[int, float]:
    start = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=600)
    try:
        conn.request("POST", "/predict", body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    return response.status, time.perf_counter() - start


def client(url: str, clip: Path, requests: int, concurrency: int) -> dict:
    """Post ``clip`` ``requests`` times, ``concurrency`` at a time; latencies and wall time."""
    host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{clip.name}\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode() + clip.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    kind = f"multipart/form-data; boundary={boundary}"
    todo = iter(range(requests))
    lock = threading.Lock()
    results = []

    def worker():
        while True:
            with lock:
                if next(todo, None) is None:
                    return
            results.append(_post(host, int(port), body, kind))

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {"wall": wall, "latencies": [lat for status, lat in results if status == 200],
            "statuses": [status for status, _ in results]}


# ---------------------------------------------------------------------------
# the servers and the baseline


def start_server(bundle: Path, workers: int, tmp: Path) -> tuple[subprocess.Popen, str]:
    log = tmp / f"serve-{workers}w.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "featx", "serve", str(bundle), "--port", "0",
                                 "--workers", str(workers), "--queue", "8"], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "Application startup complete" in text:
            return proc, next(w for w in text.split() if w.startswith("http://127.0.0.1:")).rstrip("/")
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"featx serve did not start:\n{log.read_text(errors='replace')}")


def baseline(bundle, clip: Path, requests: int) -> dict:
    latencies = []
    start = time.perf_counter()
    for _ in range(requests):
        t0 = time.perf_counter()
        frame, skipped = bundle.classify_audio([clip], progress=False)
        assert not skipped and len(frame) == 1
        latencies.append(time.perf_counter() - t0)
    return {"wall": time.perf_counter() - start, "latencies": latencies, "statuses": [200] * requests}


def percentile(values, q: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def _spread(values) -> str:
    return f"{statistics.median(values):7.2f} ({min(values):.2f}-{max(values):.2f})"


def main(argv=None) -> None:
    shared = Path(os.environ.get("FEATX_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=None,
                        help="a trained bundle [default: knn trained here on the real 3-s classical/jazz/rock rows]")
    parser.add_argument("--clip", type=Path, default=shared / "gtzan" / "audio" / "jazz" / "jazz.00000.wav")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20, help="analyses per way and round")
    parser.add_argument("--concurrency", type=int, default=2, help="requests the client keeps in flight")
    parser.add_argument("--client", default=None, help=argparse.SUPPRESS)  # the client process: URL
    args = parser.parse_args(argv)

    if args.client:
        print(json.dumps(client(args.client, args.clip, args.requests, args.concurrency)))
        return

    from featx.bundle import load_bundle

    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    bundle_dir = args.bundle
    if bundle_dir is None:
        bundle_dir = tmp / "knn3"
        subprocess.run([sys.executable, "-m", "featx", "-q", "train",
                        str(shared / "gtzan" / "features_3_sec.classical_jazz_rock.csv"), "--model", "knn",
                        "--folds", "2", "-o", str(bundle_dir)], check=True)
    bundle = load_bundle(bundle_dir)
    servers = {f"serve-{w}w": start_server(bundle_dir, w, tmp) for w in (1, 2)}
    print(f"bundle {bundle_dir} ({bundle.spec.name}), clip {args.clip.name}; {args.rounds} rounds x "
          f"{args.requests} requests per way, client concurrency {args.concurrency}; "
          f"{os.cpu_count()} CPUs, load average before {os.getloadavg()[0]:.2f}")
    bundle.classify_audio([args.clip], progress=False)  # warm-up
    for name, (_, url) in servers.items():
        subprocess.run([sys.executable, __file__, "--client", url, "--clip", str(args.clip), "--requests", "2",
                        "--concurrency", "1"], check=True, capture_output=True)
    runs = {name: [] for name in ("predict", *servers)}
    try:
        for r in range(args.rounds):
            for name in runs:
                if name == "predict":
                    result = baseline(bundle, args.clip, args.requests)
                else:
                    done = subprocess.run([sys.executable, __file__, "--client", servers[name][1], "--clip",
                                           str(args.clip), "--requests", str(args.requests),
                                           "--concurrency", str(args.concurrency)],
                                          check=True, capture_output=True, text=True)
                    result = json.loads(done.stdout)
                runs[name].append(result)
                ok = len(result["latencies"])
                print(f"round {r + 1} {name:9s}: {ok / result['wall']:6.2f} req/s, p50 "
                      f"{1000 * percentile(result['latencies'], 50):6.0f} ms, p99 "
                      f"{1000 * percentile(result['latencies'], 99):6.0f} ms ({ok}/{len(result['statuses'])} "
                      "answered 200)", flush=True)
    finally:
        for proc, _ in servers.values():
            proc.send_signal(signal.SIGINT)
            proc.wait(60)
    print(f"\nload average after {os.getloadavg()[0]:.2f}. Median over {args.rounds} rounds (min-max):")
    print(f"{'way':9s}  {'req/s':>20s}  {'p50 ms':>22s}  {'p99 ms':>22s}  {'req/s / predict':>20s}")
    for name, results in runs.items():
        rate = [len(x["latencies"]) / x["wall"] for x in results]
        base = [len(x["latencies"]) / x["wall"] for x in runs["predict"]]
        p50 = [1000 * percentile(x["latencies"], 50) for x in results]
        p99 = [1000 * percentile(x["latencies"], 99) for x in results]
        print(f"{name:9s}  {_spread(rate):>20s}  {_spread(p50):>22s}  {_spread(p99):>22s}  "
              f"{_spread([a / b for a, b in zip(rate, base)]):>20s}")


if __name__ == "__main__":
    main()
