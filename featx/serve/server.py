"""Running the application: one uvicorn server on one socket, stopped cleanly by a signal.

:func:`run` binds the socket itself (so ``port=0`` gives a free port, which
:func:`run` reports before serving), then hands it to uvicorn. Ctrl-C (SIGINT) and
SIGTERM stop the server gracefully: it stops accepting connections, lets requests in
progress finish for up to :data:`GRACE_SECONDS`, runs the application's shutdown
(which removes the upload folder), then ends with ``KeyboardInterrupt`` (SIGINT) or
``SystemExit(143)`` (SIGTERM).
"""
from __future__ import annotations

import errno
import ipaddress
import logging
import signal
import socket

import uvicorn

from ..errors import ConfigError, OutputError

logger = logging.getLogger(__name__)

__all__ = ["run", "bind", "GRACE_SECONDS"]

#: Longest wait for requests in progress when the server is asked to stop, in seconds.
GRACE_SECONDS = 10.0
#: Exit status after SIGTERM (128 + 15, as shells report it).
TERMINATED_STATUS = 128 + signal.SIGTERM


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: any free port).

    Raises
    ------
    ConfigError
        The address is in use, not this machine's, or not allowed.
    """
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:  # a host name: the first address it resolves to decides
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        except socket.gaierror as exc:
            raise ConfigError(f"host={host}: cannot be resolved ({exc.strerror}); expected an address "
                              "of this machine, e.g. 127.0.0.1") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = {errno.EADDRINUSE: "the port is in use", errno.EACCES: "not allowed (ports below 1024 need root)",
                  errno.EADDRNOTAVAIL: "not an address of this machine"}.get(exc.errno, exc.strerror or str(exc))
        raise ConfigError(f"cannot listen on host={host} port={port}: {reason}; expected a free port of an "
                          "address of this machine") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://host:port/`` of a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if sock.family == socket.AF_INET6 else f"http://{host}:{port}/"


def _terminated(signum, frame):
    raise SystemExit(TERMINATED_STATUS)


def run(app, sock: socket.socket, *, quiet: bool = False, access_log: bool = True) -> None:
    """Serve ``app`` on ``sock`` (from :func:`bind`) until SIGINT or SIGTERM.

    Raises
    ------
    KeyboardInterrupt
        After a graceful stop on SIGINT (Ctrl-C).
    SystemExit
        Status 143, after a graceful stop on SIGTERM.
    OutputError
        The application did not start (its start-up failed; the log says why).
    """
    config = uvicorn.Config(app, log_level="error" if quiet else "info", access_log=access_log and not quiet,
                            timeout_graceful_shutdown=GRACE_SECONDS, lifespan="on", server_header=False)
    server = uvicorn.Server(config)
    # uvicorn takes SIGINT and SIGTERM while it serves, stops gracefully, then raises the signal
    # again with the handlers found before: SIGTERM then ends this process through SystemExit
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        server.run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
    if not server.started:
        raise OutputError("the server did not start; its log above says why")
