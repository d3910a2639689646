"""The bounded request queue: ``workers`` analyses at a time, a small waiting room, 503 beyond.

A request holds a place from the moment it is admitted (before its upload is read)
until its answer is ready; at most ``workers + waiting`` places exist, so at most
that many uploads lie on disk and at most ``workers`` files are decoded and analysed
in memory at once, however many clients call. A request that finds no place is
refused at once (:class:`QueueFull`), without reading its upload.

Analyses run in daemon threads that share the one loaded model: NumPy, the FFTs,
featx's compiled kernels, the decoders and Keras release the interpreter lock while
they compute. A server stopped while an analysis runs does not wait for it after its
grace period: daemon threads end with the process.
"""
from __future__ import annotations

import asyncio
import contextlib
import threading

__all__ = ["AnalysisQueue", "QueueFull"]


class QueueFull(Exception):
    """Every place in the queue is taken."""


class AnalysisQueue:
    """Admission and analysis slots (see the module's description).

    Parameters
    ----------
    workers : int >= 1
        Analyses at a time.
    waiting : int >= 0
        Requests that may wait (uploading, or for a worker) besides those analysed.
    """

    def __init__(self, workers: int, waiting: int):
        if int(workers) < 1 or int(waiting) < 0:
            raise ValueError(f"workers must be >= 1 and waiting >= 0. Received: workers={workers}, waiting={waiting}")
        self.workers, self.waiting = int(workers), int(waiting)
        self.admitted = 0  # requests holding a place (changed on the event loop only)
        self.running = 0
        self._slots: asyncio.Semaphore | None = None

    @property
    def capacity(self) -> int:
        """Places in all: ``workers + waiting``."""
        return self.workers + self.waiting

    @contextlib.asynccontextmanager
    async def place(self):
        """Hold a place for one request, or raise :class:`QueueFull` at once."""
        if self.admitted >= self.capacity:
            raise QueueFull(f"all {self.workers} worker(s) busy and {self.waiting} request(s) waiting")
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    async def run(self, func, *args, **kwargs):
        """``func(*args, **kwargs)`` in a daemon thread once a worker is free; its result or its exception.

        The worker stays taken until the thread ends, even if the request stops waiting for it.
        """
        if self._slots is None:  # made on first use, inside the server's event loop
            self._slots = asyncio.Semaphore(self.workers)
        await self._slots.acquire()
        self.running += 1
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def finish(setter, value):  # on the event loop, when the thread is done
            self.running -= 1
            self._slots.release()
            if not future.done():  # the request may have been cancelled meanwhile
                setter(value)

        def target():
            try:
                outcome = (future.set_result, func(*args, **kwargs))
            except BaseException as exc:  # handed to the waiting request, which answers for it
                outcome = (future.set_exception, exc)
            try:
                loop.call_soon_threadsafe(finish, *outcome)
            except RuntimeError:  # the event loop is closed: the server has stopped
                pass

        try:
            threading.Thread(target=target, name="featx-analysis", daemon=True).start()
        except BaseException:
            self.running -= 1
            self._slots.release()
            raise
        return await future
