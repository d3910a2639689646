"""Training and evaluation: preprocessing, seeding, fitting, cross-validation, metrics.

The flow for ``featx train`` is :func:`cross_validate`: plan grouped folds
(:func:`featx.data.splits.make_splits`), and in every fold fit the scaler on the
training rows only, fit the model (Keras with early stopping and
ReduceLROnPlateau, or a scikit-learn baseline), and predict the held-out rows.
Out-of-fold predictions give segment- and track-level metrics. Finally a model
is fitted on all rows (or, for a single split, the split's model is kept) and
returned with its preprocessing, ready for :mod:`featx.bundle`.
:func:`featx.training.pipeline.train_bundle` runs all of it and writes the
bundle with its metrics, predictions, report and figures: ``featx train`` and
a sweep's ``best/`` are made by it. Defaults and vocabularies (split, metric
and optimizer names) are defined once, in :mod:`featx.training.config`; labels
are encoded by :class:`featx.data.labels.LabelEncoding`.

Keras is imported inside functions only.
"""
