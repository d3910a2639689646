"""Hyperparameter sweeps: search spaces, resumable parallel trials, results and reports.

A sweep evaluates many configurations of one model on one feature table:

1. A grouped *test part* is held out once (the same kind of split as
   ``featx train``: by track, by artist, per row, or the fault-filtered test list).
2. Every configuration (a *trial*) is cross-validated on the remaining rows;
   its out-of-fold validation metrics are the only figures used for selection.
3. The best configuration is retrained on all non-test rows, scored once on the
   test part and saved as a normal bundle in ``DIR/best/``.

Every sweep is an Optuna study (``DIR/study.db``, or a shared database given by
``storage``; see :mod:`featx.sweep.study` and :mod:`featx.sweep.storage`): grid and random
combinations are queued in it, TPE trials are sampled from it, and it says what is done
when a sweep resumes. Finished trials are also appended to ``DIR/trials.jsonl`` (one JSON line per trial,
written with a single ``write``), keyed by a hash of everything that determines
the result: the resolved hyperparameters, the data file's content, the split,
folds and seed. Re-running a sweep reuses every trial the study holds finished,
so a widened grid or an interrupted run only trains what is missing.
``results.csv`` is rewritten atomically after every trial; ``report.md`` and the
self-contained ``report.html`` are written at the end.

Trials run through :mod:`joblib` (loky worker processes, one BLAS thread each).
Keras/TensorFlow is imported inside the trial functions only.
"""
