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


def test_first_process_builds_and_stores_the_kernels(reference):
    cache, first = reference
    assert first["numba"] is True
    assert first["exists"] is True
    assert first["cache"].startswith(str(cache))


def test_later_processes_load_the_stored_code_without_numba(reference):
    cache, first = reference
    again = _probe(cache)
    assert again["numba"] is False
    assert again["digest"] == first["digest"]


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
    assert result["numba"] is True  # the damaged code was refused and compiled anew
    assert result["digest"] == first["digest"]
    assert damaged.read_bytes() == stored.read_bytes()  # and the cache repaired
    assert _probe(target)["numba"] is False


def test_a_symlinked_cache_file_is_neither_read_nor_written_through(reference, tmp_path):
    cache, first = reference
    target = tmp_path / "cache"
    (target / "kernels").mkdir(parents=True)
    stored = next((cache / "kernels").glob("kernels-*.bin"))
    victim = tmp_path / "victim.bin"
    victim.write_bytes(stored.read_bytes())  # even valid code is not read through a link
    (target / "kernels" / stored.name).symlink_to(victim)
    result = _probe(target)
    assert result["numba"] is True
    assert result["digest"] == first["digest"]
    assert victim.read_bytes() == stored.read_bytes()
    assert (target / "kernels" / stored.name).is_symlink()


def test_an_unusable_cache_folder_still_gives_the_kernels(reference, tmp_path):
    cache, first = reference
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be\n")
    result = _probe(blocker)
    assert result["digest"] == first["digest"]
    assert blocker.read_text() == "a file where the cache folder would be\n"


def test_another_cpu_or_release_gets_its_own_cache_file(reference, tmp_path):
    cache, _ = reference
    host = next((cache / "kernels").glob("kernels-*.bin"))
    result = _probe(cache, NUMBA_CPU_NAME="generic")
    assert result["cache"] != str(host)
    names = sorted(p.name for p in (cache / "kernels").glob("kernels-*.bin"))
    assert len(names) == 2  # the generic build did not replace the host one
    assert _probe(cache, NUMBA_CPU_NAME="generic")["numba"] is False


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


def test_every_kernel_has_a_prototype():
    from featx.features import _kernels

    assert set(_kernels.KERNELS) == set(native.SIGNATURES)
    for name, cfunc in _kernels.KERNELS.items():
        restype, argtypes = native.SIGNATURES[name]
        assert len(cfunc._sig.args) == len(argtypes), name
