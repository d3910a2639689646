"""Compiled kernels, built once per machine and loaded without numba.

The feature core's inner loops (:mod:`featx.features._kernels`) are numba
functions with C signatures. Importing numba and starting its compiler costs
more than half a second in every process, several times the analysis of a
30-second clip, so featx compiles the kernels once, stores their machine code in
its cache folder, and later processes load that code with LLVM's object loader
(llvmlite, which numba itself uses) and call it through :mod:`ctypes`, in about
50 ms.

The first process on a machine builds the kernels in a child process, so that
numba never enters it and Ctrl-C stops the build. The stored code is specific to this CPU, this numba/llvmlite release and the
kernels' source: all of them are part of the cache file's name, so a change of
any of them (or a shared home folder seen from another kind of CPU) builds anew.
The file ends with a SHA-256 of its content, checked before anything in it is
used (it detects damage, not tampering: the cache folder must be writable by its
owner only, like Python's own byte-code caches). When the cache cannot be written
the kernels are compiled in every process (with a warning). The cache folder is ``$FEATX_CACHE_DIR``, else
``$XDG_CACHE_HOME/featx``, else ``~/.cache/featx``; kernels go to its
``kernels`` folder.
"""
from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import platform
import stat
import struct
import sys
import threading
import time
from pathlib import Path

from ..errors import OutputError
from ..io.atomic import atomic_open
from ..io.cache import cache_root
from .kernel_layout import BLOCK, LANES  # noqa: F401  (re-exported: callers size their buffers by them)

__all__ = ["cache_file", "kernel"]

logger = logging.getLogger(__name__)


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

_MAGIC = b"FEATX-KERNELS-2\n"
#: Largest cache file read (the kernels' machine code is about 43 kB); larger is not featx's.
MAX_CACHE_BYTES = 16 << 20
#: Seconds a kernel build may take (and another process may wait for it).
BUILD_TIMEOUT = 600
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
    return [Path(__file__).with_name("_kernels.py"), Path(__file__).with_name("kernel_layout.py"), Path(__file__)]


def _fingerprint(llvm) -> str:
    """What the stored machine code depends on, as one digest."""
    digest = hashlib.sha256()
    for source in _sources():
        digest.update(source.read_bytes())
    spec = importlib.util.find_spec("numba")  # its version, without importing it
    if spec is not None and spec.origin:
        version = Path(spec.origin).with_name("_version.py")
        digest.update(version.read_bytes() if version.is_file() else spec.origin.encode())
    import llvmlite  # llvmlite: only when compiled kernels are loaded

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
    import llvmlite.binding as llvm  # llvmlite: only when compiled kernels are loaded

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
        with _build_lock(path):  # one build per machine, also when several processes start at once
            stored = _read(path)  # another process may have built them meanwhile
            if stored is None:
                stored = _build_in_child(path)
                if stored is not None and _read(path) is None:
                    _write(path, *stored)  # the child could not store it: say so (once, here)
    if stored is None:  # no child process: build here
        stored = _build()
        if stored is None:
            return _compiled_here()
        _write(path, *stored)
    try:
        return _link(llvm, *stored)
    except (RuntimeError, KeyError, ValueError, OSError, TypeError, AttributeError):
        return _compiled_here()


@contextlib.contextmanager
def _build_lock(path: Path):
    """Hold an exclusive lock beside the cache file ``path`` while the kernels are built.

    A second process waits for the first one's build (at most :data:`BUILD_TIMEOUT`
    seconds) and then reads its file. Without a writable cache folder there is no
    lock: each process builds for itself.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_name(path.name + ".lock"),
                     os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except OSError:
        yield
        return
    try:
        deadline = time.monotonic() + BUILD_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    break  # a builder that hangs: build here anyway
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


def _build_in_child(path: Path):
    """Build the kernels in a child process, which also stores them: ``(header, codes)`` or None.

    numba (and its few hundred megabytes) then never enters this process, and Ctrl-C
    stops the build: numba's compiler swallows a KeyboardInterrupt raised inside it,
    but here the interrupt reaches this process, which ends the child. The child
    sends the file's content back too, for when the cache cannot be written.
    """
    import subprocess  # only when a child process is started

    code = "import sys; from featx.features.native import _build_and_store; sys.exit(_build_and_store(sys.argv[1]))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # this very featx
    # said at the default log level (not with -q): the first run on a machine pauses here
    logger.warning("building compiled kernels, once per machine (a few seconds)")
    try:
        done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, timeout=BUILD_TIMEOUT,
                              env=env)
    except (OSError, subprocess.SubprocessError):
        return None
    return _parse(done.stdout) if done.returncode == 0 else None


def _build_and_store(path: str) -> int:
    """The child process of :func:`_build_in_child`: builds, stores, and writes the file's bytes to stdout."""
    logging.disable(logging.WARNING)  # the parent reports a cache it cannot write
    stored = _build()
    if stored is None:
        return 1
    _write(Path(path), *stored)
    sys.stdout.buffer.write(_serialize(*stored))
    sys.stdout.flush()
    return 0


def _read(path: Path):
    """``(header, codes)`` from a cache file, or None when it is missing, foreign or damaged.

    The file is the magic line, the header's length (8 bytes), the header (JSON), the
    object codes, and a SHA-256 of everything before it; the digest is checked first
    and the header's shape after. A link, anything but a regular file, or a file larger
    than :data:`MAX_CACHE_BYTES` is None before any byte is read.
    """
    try:  # not through a link, and never blocking on a FIFO
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_CACHE_BYTES:
            return None  # checked before reading: a folder, a device or a huge file is not read
        chunks, size = [], 0
        while size <= MAX_CACHE_BYTES:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    return _parse(data) if len(data) <= MAX_CACHE_BYTES else None


def _parse(data: bytes):
    """``(header, codes)`` from a cache file's bytes, or None (see :func:`_read`)."""
    if not data.startswith(_MAGIC) or len(data) < len(_MAGIC) + 8 + 32:
        return None
    body, digest = data[:-32], data[-32:]
    if hashlib.sha256(body).digest() != digest:
        return None
    try:
        size = int.from_bytes(body[len(_MAGIC) : len(_MAGIC) + 8], "little")
        start = len(_MAGIC) + 8
        header = json.loads(body[start : start + size].decode("utf-8"))
        if not _valid_header(header):
            return None
        codes = []
        offset = start + size
        for entry in header["objects"]:
            code = body[offset : offset + entry["size"]]
            offset += entry["size"]
            if len(code) != entry["size"] or hashlib.sha256(code).hexdigest() != entry["sha256"]:
                return None
            codes.append(code)
        if offset != len(body):
            return None
    except (ValueError, UnicodeDecodeError):
        return None
    return header, codes


def _valid_header(header) -> bool:
    """Whether a cache file's header has the shape :func:`_build` writes."""
    if not isinstance(header, dict):
        return False
    kernels, objects, undefined = header.get("kernels"), header.get("objects"), header.get("undefined")
    if not (isinstance(kernels, dict) and isinstance(objects, list) and isinstance(undefined, list)):
        return False
    if set(kernels) != set(SIGNATURES) or not all(isinstance(n, str) and n for n in undefined):
        return False
    for entry in objects:
        if not (isinstance(entry, dict) and isinstance(entry.get("size"), int) and entry["size"] > 0
                and isinstance(entry.get("sha256"), str)):
            return False
    for value in kernels.values():
        if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], int)
                and 0 <= value[0] < len(objects) and isinstance(value[1], str) and value[1]):
            return False
    return True


def _serialize(header: dict, codes: list[bytes]) -> bytes:
    meta = json.dumps(header, sort_keys=True).encode("utf-8")
    body = _MAGIC + len(meta).to_bytes(8, "little") + meta + b"".join(codes)
    return body + hashlib.sha256(body).digest()


def _write(path: Path, header: dict, codes: list[bytes]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as fh:
            fh.write(_serialize(header, codes))
    except (OSError, OutputError) as exc:
        # a read-only cache: the kernels were built for this process anyway
        logger.warning("cannot store the compiled kernels in %s (%s); every featx process will compile "
                       "them again (a few seconds): set FEATX_CACHE_DIR to a writable folder",
                       path.parent, getattr(exc, "strerror", None) or exc)


def _build():
    """Compile every kernel with numba: ``(header, object codes)``, or None if that fails."""
    try:
        # pulls in numba: only on this path
        from . import _kernels  # numba: only where the kernels are built (a child process)
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
            # and what code generation added (memset, compiler helpers), from the object itself
            undefined.update(_elf_undefined(code))
    except (AttributeError, TypeError, RuntimeError):
        return None  # another numba release: compile in the process instead
    header["undefined"] = sorted(undefined)
    return header, codes


def _elf_undefined(code: bytes) -> set[str]:
    """Names of the undefined symbols of a 64-bit little-endian ELF object (empty for other formats)."""
    if code[:6] != b"\x7fELF\x02\x01":
        return set()
    try:
        return _elf_symbols(code, struct)
    except (struct.error, ValueError, IndexError):
        return set()


def _elf_symbols(code: bytes, struct) -> set[str]:
    shoff, = struct.unpack_from("<Q", code, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", code, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", code, shoff + i * shentsize) for i in range(shnum)]
    names = set()
    for _, kind, _, _, offset, size, link, _, _, entsize in sections:
        if kind != 2 or not entsize:  # SHT_SYMTAB
            continue
        strtab = sections[link][4]
        for k in range(1, size // entsize):
            name_at, info, _, shndx, _, _ = struct.unpack_from("<IBBHQQ", code, offset + k * entsize)
            if shndx == 0 and name_at and info >> 4 in (1, 2):  # undefined, global or weak
                end = code.index(b"\0", strtab + name_at)
                names.add(code[strtab + name_at : end].decode("ascii", "replace"))
    return names


@ctypes.CFUNCTYPE(None)
def _unreachable():
    # numba's error-reporting and reference-count paths are linked into the kernels
    # but not reached for the sizes featx passes (see featx.features._kernels)
    os.write(2, b"featx: a compiled kernel took an error path (invalid sizes?); report it with the "
                b"command that led to it\n")
    os.abort()


def _symbol_address(name: str) -> int:
    try:
        return ctypes.cast(getattr(ctypes.pythonapi, name), ctypes.c_void_p).value
    except AttributeError:
        return ctypes.cast(_unreachable, ctypes.c_void_p).value


def _link(llvm, header: dict, codes: list[bytes]) -> dict[str, object]:
    for name in header["undefined"]:
        # symbols already known (numba's own, once it is loaded) are left alone; the
        # C library's come from this process; numba's helpers, on error paths only, get
        # a stub that stops the process with a message instead of jumping to address 0
        if not llvm.address_of_symbol(name):
            llvm.add_symbol(name, _symbol_address(name))
    missing = [name for name in header["undefined"] if not llvm.address_of_symbol(name)]
    if missing:
        raise RuntimeError(f"unresolved symbols {missing}")
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
    # pulls in numba: only on this path
    from . import _kernels  # numba: only when the kernels cannot be loaded from the cache

    return {name: _prototype(name)(cfunc.address) for name, cfunc in _kernels.KERNELS.items()}
