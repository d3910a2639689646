"""Training and evaluation: preprocessing, seeding, fitting, cross-validation, metrics.

The flow for ``featx train`` is :func:`cross_validate`: plan grouped folds
(:func:`featx.dataset.make_splits`), and in every fold fit the scaler on the
training rows only, fit the model (Keras with early stopping and
ReduceLROnPlateau, or a scikit-learn baseline), and predict the held-out rows.
Out-of-fold predictions give segment- and track-level metrics. Finally a model
is fitted on all rows (or, for a single split, the split's model is kept) and
returned with its preprocessing, ready for :mod:`featx.bundle`.

Keras is imported inside functions only.
"""
