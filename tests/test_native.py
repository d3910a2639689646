"""The compiled kernels: built once, stored, and loaded in later processes without numba."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from featx.features import native

# Runs the three kernel users on fixed data and prints what the process imported,
# where the kernels came from and a digest of the results.
_PROBE = r"""
import hashlib, json, sys
import numpy as np
from featx.features.compute import _magnitudes
from featx.features.masking import masked_spectrum
from featx.features.median import median_filter_rows
from featx.features import native

rng = np.random.default_rng(7)
D = (rng.standard_normal((2, 40, 257)) + 1j * rng.standard_normal((2, 40, 257))).astype(np.complex64)
S, power, rolloff = _magnitudes(D, roll_percent=0.85)
harm = median_filter_rows(S, size=31, axis=-1)
perc = median_filter_rows(S, size=31, axis=-2)
out = masked_spectrum(D, harm, perc)
digest = hashlib.sha256()
for a in (S, power, rolloff, harm, perc, out):
    digest.update(np.ascontiguousarray(a).tobytes())
print(json.dumps({"numba": "numba" in sys.modules, "digest": digest.hexdigest(),
                  "cache": str(native.cache_file()), "exists": native.cache_file().is_file()}))
"""


def _probe(cache, **env):
    full = {**os.environ, "FEATX_CACHE_DIR": str(cache), **env}
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=full, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A cold cache: the first process compiles with numba and stores the code."""
    cache = tmp_path_factory.mktemp("kernels")
    first = _probe(cache)
    return cache, first


@pytest.mark.slow
def test_first_process_builds_and_stores_the_kernels_in_a_child(reference):
    cache, first = reference
    assert first["numba"] is False  # numba ran in the builder process only
    assert first["exists"] is True
    assert first["cache"].startswith(str(cache))


def test_later_processes_load_the_stored_code_without_numba(reference):
    cache, first = reference
    again = _probe(cache)
    assert again["numba"] is False
    assert again["digest"] == first["digest"]


@pytest.mark.slow
def test_a_damaged_cache_file_is_rebuilt_not_loaded(reference, tmp_path):
    cache, first = reference
    target = tmp_path / "cache"
    stored = next((cache / "kernels").glob("kernels-*.bin"))
    (target / "kernels").mkdir(parents=True)
    data = bytearray(stored.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte in the machine code
    damaged = target / "kernels" / stored.name
    damaged.write_bytes(bytes(data))
    result = _probe(target)
    assert result["digest"] == first["digest"]
    assert damaged.read_bytes() == stored.read_bytes()  # refused, compiled anew and stored
    assert _probe(target)["numba"] is False


@pytest.mark.slow
def test_a_symlinked_cache_file_is_neither_read_nor_written_through(reference, tmp_path):
    cache, first = reference
    target = tmp_path / "cache"
    (target / "kernels").mkdir(parents=True)
    stored = next((cache / "kernels").glob("kernels-*.bin"))
    victim = tmp_path / "victim.bin"
    victim.write_bytes(stored.read_bytes())
    # a well-formed file that would show it was read: it names a function its code does
    # not hold, so linking it fails and the process compiles the kernels itself (numba)
    _rewrite_header(victim, lambda h: h["kernels"]["masked"].__setitem__(1, "featx_test_no_such_function"))
    assert native._read(victim) is not None
    planted = victim.read_bytes()
    (target / "kernels" / stored.name).symlink_to(victim)
    result = _probe(target)
    assert result["numba"] is False  # the link was not followed: a child built the kernels
    assert result["digest"] == first["digest"]
    assert victim.read_bytes() == planted  # nor written through
    assert (target / "kernels" / stored.name).is_symlink()


@pytest.mark.slow
def test_an_unusable_cache_folder_still_gives_the_kernels(reference, tmp_path):
    cache, first = reference
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be\n")
    result = _probe(blocker)
    assert result["digest"] == first["digest"]
    assert blocker.read_text() == "a file where the cache folder would be\n"


@pytest.mark.slow
def test_another_cpu_or_release_gets_its_own_cache_file(reference, tmp_path):
    cache, _ = reference
    host = next((cache / "kernels").glob("kernels-*.bin"))
    result = _probe(cache, NUMBA_CPU_NAME="generic")
    assert result["cache"] != str(host)
    names = sorted(p.name for p in (cache / "kernels").glob("kernels-*.bin"))
    assert len(names) == 2  # the generic build did not replace the host one
    assert _probe(cache, NUMBA_CPU_NAME="generic")["numba"] is False


@pytest.mark.slow
def test_kernels_compiled_here_match_the_loaded_ones():
    rng = np.random.default_rng(3)
    x = rng.random((4, 50, 24)).astype(np.float32)
    loaded = native.kernel("median_rows")
    here = native._compiled_here()["median_rows"]
    outs = []
    for fn in (loaded, here):
        out = np.empty_like(x)
        size = 9
        m = 50 + size - 1
        from featx.features.median import _reflected_positions

        reflected = _reflected_positions(50, size)
        identity = np.arange(m, dtype=np.int64)
        window = np.empty((2 * (4 * ((size + 3) // 4) + 2) + 3) * native.LANES, np.float32)
        dummy = np.empty(1, np.float32)
        fn(x.ctypes.data, out.ctypes.data, 4, 50, 24, size, reflected.ctypes.data, identity.ctypes.data,
           window.ctypes.data, dummy.ctypes.data, dummy.ctypes.data)
        outs.append(out)
    np.testing.assert_array_equal(outs[0], outs[1])


def test_every_kernel_has_a_matching_prototype():
    import ctypes

    from numba import types

    from featx.features import _kernels

    def as_ctypes(t):
        if isinstance(t, types.CPointer):
            return ctypes.c_void_p
        return {types.int64: ctypes.c_int64, types.int32: ctypes.c_int32, types.float32: ctypes.c_float,
                types.void: None}[t]

    assert set(_kernels.KERNELS) == set(native.SIGNATURES)
    for name, cfunc in _kernels.KERNELS.items():
        restype, argtypes = native.SIGNATURES[name]
        assert as_ctypes(cfunc._sig.return_type) is restype, name
        assert [as_ctypes(a) for a in cfunc._sig.args] == list(argtypes), name


def _rewrite_header(path, change):
    """Rewrite a cache file's header with ``change(header)``, with a valid digest (a crafted file)."""
    import hashlib

    data = path.read_bytes()
    magic = data[: data.index(b"\n") + 1]
    size = int.from_bytes(data[len(magic) : len(magic) + 8], "little")
    header = json.loads(data[len(magic) + 8 : len(magic) + 8 + size])
    change(header)
    meta = json.dumps(header).encode()
    body = magic + len(meta).to_bytes(8, "little") + meta + data[len(magic) + 8 + size : -32]
    path.write_bytes(body + hashlib.sha256(body).digest())


@pytest.mark.parametrize("change", [
    lambda h: h.update(kernels=list(h["kernels"])),
    lambda h: h.update(undefined=[1]),
    lambda h: h["objects"][0].update(size=-5),
    lambda h: h["kernels"].pop("masked"),
], ids=["kernels-a-list", "undefined-not-names", "negative-size", "kernel-missing"])
def test_a_malformed_header_is_refused(reference, tmp_path, change):
    """A crafted file with a valid digest but a header of the wrong shape is not used
    (refused files are compiled anew and replaced, as the damaged-file test shows)."""
    cache, _ = reference
    stored = next((cache / "kernels").glob("kernels-*.bin"))
    assert native._read(stored) is not None
    target = tmp_path / stored.name
    target.write_bytes(stored.read_bytes())
    _rewrite_header(target, lambda h: None)
    assert native._read(target) is not None  # the rewriting itself keeps a valid file
    _rewrite_header(target, change)
    assert native._read(target) is None


def test_every_symbol_the_code_needs_is_listed(reference):
    cache, _ = reference
    header, codes = native._read(next((cache / "kernels").glob("kernels-*.bin")))
    from_objects = set().union(*(native._elf_undefined(code) for code in codes))
    assert from_objects and from_objects <= set(header["undefined"])


@pytest.mark.slow
def test_an_error_path_stops_the_process_with_a_message(reference):
    cache, _ = reference
    code = ("import numpy as np\n"
            "from featx.features.native import kernel\n"
            "x = np.zeros(1, np.float32); i = np.zeros(40, np.int64)\n"
            "kernel('median_rows')(x.ctypes.data, x.ctypes.data, 0, 10, 1, 31, i.ctypes.data, i.ctypes.data,"
            " x.ctypes.data, x.ctypes.data, x.ctypes.data)\n")  # no lanes: excluded by the docstring
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "FEATX_CACHE_DIR": str(cache)}, timeout=120)
    assert done.returncode != 0 and done.returncode != -11  # stopped, not a segmentation fault
    assert "featx: a compiled kernel took an error path" in done.stderr


@pytest.mark.slow
def test_numba_code_works_after_the_kernels_are_loaded(reference):
    cache, first = reference
    code = _PROBE + (
        "import numba\n"
        "@numba.njit\n"
        "def f(n):\n"
        "    a = np.arange(n) * 2\n"
        "    if n > 3:\n"
        "        raise ValueError('too many')\n"
        "    return a.sum()\n"
        "assert f(3) == 6\n"
        "try:\n"
        "    f(5)\n"
        "except ValueError as e:\n"
        "    print('raised', e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "FEATX_CACHE_DIR": str(cache)}, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "raised too many" in done.stdout
    assert json.loads(done.stdout.splitlines()[0])["digest"] == first["digest"]


def test_the_cache_folder_is_always_an_absolute_path(monkeypatch, tmp_path):
    from featx.io.cache import cache_root

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FEATX_CACHE_DIR", "rel/cache")
    assert cache_root() == tmp_path / "rel" / "cache"
    monkeypatch.delenv("FEATX_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative-xdg")  # ignored, as the XDG specification says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "featx"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "featx"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", "not/absolute")
    root = cache_root()
    assert root.is_absolute() and root.name.startswith("featx-cache-")


@pytest.mark.slow
def test_ctrl_c_during_the_first_build_stops_the_run_and_its_builder(tmp_path, write_wav, genre_clip):
    import signal
    import time

    write_wav(tmp_path / "in" / "a.wav", genre_clip("tones", 1, seconds=4.0))
    env = {**os.environ, "FEATX_CACHE_DIR": str(tmp_path / "cache")}
    run = subprocess.Popen([sys.executable, "-m", "featx", "extract", str(tmp_path / "in"), "-o",
                            str(tmp_path / "f.csv"), "-j", "1"], env=env, stderr=subprocess.PIPE, text=True,
                           start_new_session=True,  # its own process group, as a terminal's Ctrl-C reaches
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def builders():
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    if b"_build_and_store" in fh.read() and os.getpgid(int(pid)) == run.pid:
                        found.append(int(pid))
            except OSError:
                continue
        return found

    deadline = time.monotonic() + 60
    while not builders() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.poll() is None, "the run ended before its kernel build started"
    time.sleep(0.5)  # well inside numba's compiler
    os.killpg(run.pid, signal.SIGINT)
    err = run.communicate(timeout=60)[1]
    assert run.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("extract: interrupted")
    time.sleep(0.2)
    assert builders() == []
    assert not list((tmp_path / "cache").rglob("kernels-*.bin"))


@pytest.mark.slow
@pytest.mark.parametrize("quiet", [True, False])
def test_worker_processes_report_an_unusable_cache_as_the_command_line_does(tmp_path, write_wav, genre_clip, quiet):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be\n")
    for k in range(2):
        write_wav(tmp_path / "in" / f"{k}.wav", genre_clip("tones", k, seconds=4.0))
    env = {**os.environ, "FEATX_CACHE_DIR": str(blocker)}
    args = [sys.executable, "-m", "featx", *(["-q"] if quiet else []), "extract", str(tmp_path / "in"), "-o",
            str(tmp_path / "f.csv"), "-j", "2", "--preset", "gtzan"]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "compiled kernels" in line and ANNOUNCEMENT not in line]
    if quiet:
        assert done.stderr == ""  # -q: nothing but errors, from workers neither
    else:
        assert lines and all(line.startswith("WARNING: cannot store the compiled kernels") for line in lines)


def _start_probe(cache, *extra):
    """The probe as a running process (stdout and stderr piped)."""
    env = {**os.environ, "FEATX_CACHE_DIR": str(cache)}
    # the process's own peak (VmHWM): ru_maxrss would include the parent it was forked from
    code = _PROBE + ("peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
                     "print(json.dumps({'max_rss_kb': int(peak)}))\n")
    return subprocess.Popen([sys.executable, "-c", code, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


ANNOUNCEMENT = "building compiled kernels, once per machine"


@pytest.mark.slow
def test_first_build_is_announced_once_even_when_processes_start_together(reference, tmp_path):
    cache, first = reference
    procs = [_start_probe(tmp_path / "cache") for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    said = sum(err.count(ANNOUNCEMENT) for _, err in outs)
    assert said == 1, outs  # one process built, the other waited for its file
    assert {json.loads(out.splitlines()[0])["digest"] for out, _ in outs} == {first["digest"]}
    again = _start_probe(tmp_path / "cache")
    _, err = again.communicate(timeout=600)
    assert ANNOUNCEMENT not in err  # built once per machine


@pytest.mark.slow
def test_first_build_is_silent_under_quiet(corpus, tmp_path):
    env = {**os.environ, "FEATX_CACHE_DIR": str(tmp_path / "cache")}
    loud = subprocess.run([sys.executable, "-m", "featx", "extract", str(corpus), "-o", str(tmp_path / "a.csv"),
                           "-j", "1"], capture_output=True, text=True, env=env, timeout=600)
    assert loud.returncode == 0 and loud.stderr.count(ANNOUNCEMENT) == 1, loud.stderr
    env["FEATX_CACHE_DIR"] = str(tmp_path / "cache2")
    quiet = subprocess.run([sys.executable, "-m", "featx", "-q", "extract", str(corpus), "-o",
                            str(tmp_path / "b.csv"), "-j", "1"], capture_output=True, text=True, env=env, timeout=600)
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert list((tmp_path / "cache2" / "kernels").glob("kernels-*.bin"))  # built all the same


@pytest.mark.slow
@pytest.mark.parametrize("what", ["huge file", "fifo", "folder"])
def test_a_huge_file_or_a_fifo_at_the_cache_path_is_not_read(reference, tmp_path, what):
    cache, first = reference
    stored = cache / "kernels" / os.path.basename(first["cache"])  # this machine's (not another CPU's) file
    target = tmp_path / "cache" / "kernels" / stored.name
    target.parent.mkdir(parents=True)
    if what == "fifo":
        os.mkfifo(target)
    elif what == "folder":  # was "Error: 4: Is a directory" (a folder opened, then read as a file)
        target.mkdir()
        (target.parent / (target.name + ".lock")).mkdir()
    else:
        with open(target, "wb") as fh:
            fh.truncate(1 << 30)  # 1 GiB (sparse): reading it whole would show in the peak memory
    proc = _start_probe(tmp_path / "cache")
    out, err = proc.communicate(timeout=600)  # a FIFO opened for reading would block here
    assert proc.returncode == 0, err
    result, rss = (json.loads(line) for line in out.splitlines()[:2])
    assert result["digest"] == first["digest"]
    assert rss["max_rss_kb"] < 600 * 1024, rss
    if what == "folder":  # not featx's to remove: the kernels are compiled in each process, with a warning
        assert target.is_dir() and "cannot store the compiled kernels" in err
    else:
        assert target.read_bytes() == stored.read_bytes()  # made again in featx's own cache folder
