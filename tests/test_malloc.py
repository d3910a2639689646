"""featx extract keeps the analysis' large arrays in the heap; the library leaves the allocator alone."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # every test here trains, reads real data or runs real processes

def _is_glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError, AttributeError):
        return False


glibc_only = pytest.mark.skipif(not _is_glibc(), reason="the allocator settings exist on glibc only")

# Extracts the clip three times after ARGV's setup and prints the page faults of the last run.
_FAULTS = r"""
import json, os, resource, sys
clip, setup = sys.argv[1], sys.argv[2]
from featx.extract.file import extract_features
from featx.features.settings import FeatureSettings
if setup == "cli":
    from featx.cli import main
    main(["-q", "extract", os.path.dirname(clip), "-o", sys.argv[3], "-j", "1"], standalone_mode=False)
settings = FeatureSettings(preset="gtzan")
for _ in range(2):
    extract_features(clip, settings)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
extract_features(clip, settings)
import featx.runtime.allocator
print(json.dumps({"faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before,
                  "kept": featx.runtime.allocator._done is True}))
"""


def _faults(clip, setup, out, **env):
    clean = {k: v for k, v in os.environ.items() if k not in ("FEATX_KEEP_WORK_ARRAYS", "FEATX_MALLOC")}
    done = subprocess.run([sys.executable, "-c", _FAULTS, str(clip), setup, str(out)], capture_output=True,
                          text=True, env={**clean, **env}, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@glibc_only
def test_featx_extract_reuses_its_arrays_and_the_library_alone_does_not(tmp_path, write_wav, genre_clip):
    clip = tmp_path / "audio" / "noise.wav"
    write_wav(clip, genre_clip("noise", 3, seconds=30.0))
    library = _faults(clip, "library", tmp_path / "a.csv")
    cli = _faults(clip, "cli", tmp_path / "b.csv")
    assert library["kept"] is False and cli["kept"] is True
    # each 30-s analysis maps ~8,000 fresh pages with glibc's defaults, a few once reused
    assert library["faults"] > 2000, library
    assert cli["faults"] < library["faults"] / 5, (cli, library)
    off = _faults(clip, "cli", tmp_path / "c.csv", FEATX_MALLOC="0")
    assert off["faults"] > 2000 and off["kept"] is False, off


@glibc_only
def test_featx_worker_processes_keep_their_arrays(tmp_path, write_wav, genre_clip):
    code = ("import sys\n"
            "from featx.extract import pool\n"
            "from featx.extract.runner import _work\n"
            "from featx.features.settings import FeatureSettings\n"
            "def kept():\n"
            "    import featx.runtime.allocator\n"
            "    return featx.runtime.allocator._done is True\n"
            "executor = pool._executor(1, fresh=True)\n"
            "executor.submit(_work, sys.argv[1], FeatureSettings()).result()\n"
            "print(executor.submit(kept).result())\n"
            "executor.shutdown()\n"
            "import featx.runtime.allocator\n"
            "print(featx.runtime.allocator._done is True)\n")
    clip = tmp_path / "a.wav"
    write_wav(clip, genre_clip("tones", 1, seconds=4.0))
    clean = {k: v for k, v in os.environ.items() if k not in ("FEATX_KEEP_WORK_ARRAYS", "FEATX_MALLOC")}
    done = subprocess.run([sys.executable, "-c", code, str(clip)], capture_output=True, text=True, env=clean,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False"]  # the worker did, the process that called the library did not


@glibc_only
@pytest.mark.parametrize("env,applied", [
    ({}, True),
    ({"FEATX_MALLOC": "0"}, False),
    ({"MALLOC_TRIM_THRESHOLD_": "131072"}, False),
    ({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=65536"}, False),
])
def test_the_user_s_own_allocator_settings_take_precedence(env, applied):
    code = "from featx.runtime.allocator import keep_work_arrays as k; print(k(), k())"
    clean = {k: v for k, v in os.environ.items()
             if k not in ("FEATX_MALLOC", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**clean, **env}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(applied)] * 2
