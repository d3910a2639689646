"""Fitting scikit-learn estimators (featx/models/sklearn_rows.py): Ctrl-C gets through a fit
that swallows it, and fits and predictions run on one thread."""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest


@pytest.mark.slow
def test_fit_estimator_reraises_interrupt_swallowed_by_mlp(tmp_path, default_sigint):
    script = textwrap.dedent("""
        import numpy as np, sys
        from sklearn.neural_network import MLPClassifier
        from featx.models.sklearn_rows import fit_estimator
        rng = np.random.default_rng(0)
        X = rng.normal(size=(400, 20)); y = rng.integers(0, 4, 400)
        est = MLPClassifier((64,), max_iter=1000000, tol=0.0, n_iter_no_change=1000000)
        print("fitting", flush=True)
        try:
            fit_estimator(est, X, y)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(7)
        print("finished", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    assert proc.stdout.readline().strip() == "fitting"
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 7, out + err
    assert "interrupted" in out
    assert "Training interrupted by user" not in err


def test_scikit_learn_fits_and_predictions_run_on_one_thread():
    """A real estimator that records the BLAS/OpenMP thread counts it runs under."""
    from sklearn.base import BaseEstimator, ClassifierMixin
    from threadpoolctl import threadpool_info

    from featx.models.sklearn_rows import fit_estimator, sklearn_proba

    def threads():
        return max(pool["num_threads"] for pool in threadpool_info())

    class ThreadRecorder(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            self.classes_ = np.unique(y)
            self.fit_threads_ = threads()
            return self

        def predict_proba(self, X):
            self.predict_threads_ = threads()
            return np.full((len(X), len(self.classes_)), 1.0 / len(self.classes_))

    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    model = fit_estimator(ThreadRecorder(), X, y)
    proba = sklearn_proba(model, X)
    assert model.fit_threads_ == 1 and model.predict_threads_ == 1
    assert proba.shape == (20, 2)
