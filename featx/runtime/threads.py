"""One limit on BLAS/OpenMP threads for numeric work that featx runs in-process.

scikit-learn fits and predictions call BLAS (OpenBLAS, MKL) and OpenMP kernels
that start one thread per core. On a machine where another process already
keeps a core busy, those threads wait on each other and an ensemble fit takes
several times longer than with one thread, for the very same result. Every
scikit-learn fit, refit and prediction, and every feature extraction, runs
inside :func:`limited_threads`.
"""
from __future__ import annotations

import contextlib

#: Threads numeric libraries may use inside :func:`limited_threads`.
NUMERIC_THREADS = 1


@contextlib.contextmanager
def limited_threads(limit: int = NUMERIC_THREADS):
    """Limit BLAS and OpenMP thread pools to ``limit`` threads within the block.

    Parameters
    ----------
    limit : int >= 1

    Examples
    --------
    >>> import numpy as np
    >>> with limited_threads():
    ...     product = np.ones((4, 4)) @ np.ones((4, 4))
    """
    from threadpoolctl import threadpool_limits  # threadpoolctl: only around numeric work

    with threadpool_limits(limits=int(limit)):
        yield
