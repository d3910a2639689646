"""Compiled kernels, built once per machine and loaded without numba.

The feature core's inner loops (:mod:`featx.features._kernels`) are numba
functions with C signatures. Importing numba and starting its compiler costs
more than half a second in every process, several times the analysis of a
30-second clip, so featx compiles the kernels once, stores their machine code in
its cache folder, and later processes load that code with LLVM's object loader
(llvmlite, which numba itself uses) and call it through :mod:`ctypes`, in about
40 ms.

The stored code is specific to this CPU, this numba/llvmlite release and the
kernels' source: all of them are part of the cache file's name, so a change of
any of them (or a shared home folder seen from another kind of CPU) builds anew.
The file also carries a SHA-256 of the code, checked before it is loaded. When
the cache cannot be read or written the kernels are compiled in the process and
used from there. The cache folder is ``$FEATX_CACHE_DIR``, else
``$XDG_CACHE_HOME/featx``, else ``~/.cache/featx``; kernels go to its
``kernels`` folder.
"""
from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import json
import os
import platform
import sys
import threading
from pathlib import Path

from ..io.cache import cache_root

__all__ = ["cache_file", "kernel"]

#: Lanes (rows) the median kernel filters together; its scratch buffers are sized by it.
LANES = 96
#: Frames the magnitude kernel handles together (one SIMD vector of float32).
BLOCK = 16

_P = ctypes.c_void_p
_I64 = ctypes.c_int64

#: ctypes prototype (result, arguments) of each kernel of :data:`featx.features._kernels.KERNELS`.
SIGNATURES = {
    "median_rows": (None, (_P, _P, _I64, _I64, _I64, _I64, _P, _P, _P, _P, _P)),
    "nan_or_negative_zero": (ctypes.c_int32, (_P, _I64)),
    "masked": (None, (_P, _P, _P, _P, _I64, _I64, _I64)),
    "magnitudes": (None, (_P, _P, _P, _P, _P, _I64, _I64, _I64, ctypes.c_float)),
    "banded_product": (None, (_P, _P, _P, _P, _P, _I64, _I64, _I64, _I64)),
}

_MAGIC = b"FEATX-KERNELS-1\n"
_lock = threading.Lock()
_loaded: dict[str, object] = {}
_keep: list = []  # the execution engine and callbacks live as long as the process


def kernel(name: str):
    """The ctypes function of kernel ``name``, loaded (or built) on first use."""
    fn = _loaded.get(name)
    if fn is None:
        with _lock:
            if not _loaded:
                _loaded.update(_load_all())
        fn = _loaded[name]
    return fn


def _sources() -> list[Path]:
    return [Path(__file__).with_name("_kernels.py"), Path(__file__)]


def _fingerprint(llvm) -> str:
    """What the stored machine code depends on, as one digest."""
    digest = hashlib.sha256()
    for source in _sources():
        digest.update(source.read_bytes())
    spec = importlib.util.find_spec("numba")  # its version, without importing it
    if spec is not None and spec.origin:
        version = Path(spec.origin).with_name("_version.py")
        digest.update(version.read_bytes() if version.is_file() else spec.origin.encode())
    import llvmlite

    for part in (llvmlite.__version__, llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten(),
                 platform.machine(), sys.platform, f"{sys.version_info[0]}.{sys.version_info[1]}",
                 os.environ.get("NUMBA_CPU_NAME", ""), os.environ.get("NUMBA_CPU_FEATURES", ""),
                 os.environ.get("NUMBA_OPT", "")):
        digest.update(b"\0" + str(part).encode())
    return digest.hexdigest()[:20]


def cache_file() -> Path:
    """The cache file of this machine's kernels (it may not exist yet)."""
    llvm = _llvm()
    return cache_root() / "kernels" / f"kernels-{_fingerprint(llvm)}.bin"


def _llvm():
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return llvm


def _load_all() -> dict[str, object]:
    try:
        llvm = _llvm()
        path = cache_root() / "kernels" / f"kernels-{_fingerprint(llvm)}.bin"
    except (ImportError, OSError, RuntimeError):
        return _compiled_here()
    stored = _read(path)
    if stored is None:
        stored = _build()
        if stored is None:
            return _compiled_here()
        _write(path, *stored)
    try:
        return _link(llvm, *stored)
    except (RuntimeError, KeyError, ValueError, OSError):
        return _compiled_here()


def _read(path: Path):
    """``(header, code)`` from a cache file, or None when it is missing, foreign or damaged."""
    try:
        if path.is_symlink() or not path.is_file():
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if not data.startswith(_MAGIC):
        return None
    try:
        size = int.from_bytes(data[len(_MAGIC) : len(_MAGIC) + 8], "little")
        start = len(_MAGIC) + 8
        header = json.loads(data[start : start + size].decode("utf-8"))
        codes = []
        offset = start + size
        for entry in header["objects"]:
            code = data[offset : offset + entry["size"]]
            offset += entry["size"]
            if len(code) != entry["size"] or hashlib.sha256(code).hexdigest() != entry["sha256"]:
                return None
            codes.append(code)
        if set(header["kernels"]) != set(SIGNATURES):
            return None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None
    return header, codes


def _write(path: Path, header: dict, codes: list[bytes]) -> None:
    from ..io.atomic import atomic_open
    from ..errors import OutputError

    meta = json.dumps(header, sort_keys=True).encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as fh:
            fh.write(_MAGIC + len(meta).to_bytes(8, "little") + meta + b"".join(codes))
    except (OSError, OutputError):
        pass  # a read-only cache: the kernels were built for this process anyway


def _build():
    """Compile every kernel with numba: ``(header, object codes)``, or None if that fails."""
    try:
        from . import _kernels
    except ImportError:
        return None
    header = {"kernels": {}, "objects": [], "undefined": []}
    codes = []
    undefined = set()
    try:
        for name, cfunc in _kernels.KERNELS.items():
            library = cfunc._library
            module = library._final_module
            code = bytes(library._codegen._tm.emit_object(module))
            header["kernels"][name] = [len(codes), cfunc.native_name]
            header["objects"].append({"size": len(code), "sha256": hashlib.sha256(code).hexdigest()})
            codes.append(code)
            undefined.update(f.name for f in module.functions if f.is_declaration and not f.name.startswith("llvm."))
            undefined.update(g.name for g in module.global_variables if g.is_declaration)
    except (AttributeError, TypeError, RuntimeError):
        return None  # another numba release: compile in the process instead
    header["undefined"] = sorted(undefined)
    return header, codes


@ctypes.CFUNCTYPE(None)
def _unreachable():
    # the kernels never raise, allocate or call back into Python; these symbols
    # (numba's error and reference-count paths) are linked but never reached
    os.write(2, b"featx: a compiled kernel took an error path; delete featx's kernels cache\n")
    os.abort()


def _symbol_address(name: str) -> int:
    try:
        return ctypes.cast(getattr(ctypes.pythonapi, name), ctypes.c_void_p).value
    except AttributeError:
        return ctypes.cast(_unreachable, ctypes.c_void_p).value


def _link(llvm, header: dict, codes: list[bytes]) -> dict[str, object]:
    for name in header["undefined"]:
        # symbols already known (numba's own, once it is loaded) are left alone
        if not llvm.address_of_symbol(name):
            llvm.add_symbol(name, _symbol_address(name))
    machine = llvm.Target.from_default_triple().create_target_machine()
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), machine)
    for code in codes:
        engine.add_object_file(llvm.ObjectFileRef.from_data(code))
    engine.finalize_object()
    _keep.append(engine)
    functions = {}
    for name, (_, symbol) in header["kernels"].items():
        address = engine.get_function_address(symbol)
        if not address:
            raise KeyError(symbol)
        functions[name] = _prototype(name)(address)
    return functions


def _prototype(name: str):
    restype, argtypes = SIGNATURES[name]
    return ctypes.CFUNCTYPE(restype, *argtypes)


def _compiled_here() -> dict[str, object]:
    """The kernels compiled in this process (no cache)."""
    from . import _kernels

    return {name: _prototype(name)(cfunc.address) for name, cfunc in _kernels.KERNELS.items()}
