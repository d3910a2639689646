"""Training and evaluation: the frozen configuration, cross-validation, metrics.

The flow for ``featx train`` is :func:`featx.training.cv.cross_validate`: plan grouped
folds (:func:`featx.data.splits.make_splits`), and in every fold ask the registry for
a model object (:func:`featx.models.registry.create`), fit it on the training rows
(its preprocessing is fitted there too), and predict the held-out rows. Out-of-fold
predictions give segment- and track-level metrics (:mod:`featx.training.metrics`;
multi-label ones in :mod:`featx.training.multilabel_eval`). Finally a model is fitted
on all rows (or, for a single split, the split's model is kept) and returned, ready
for :mod:`featx.bundle`. :func:`featx.pipeline.train.train_bundle` runs all of it and
writes the bundle with its metrics, predictions, report and figures.

Defaults and vocabularies (split, metric and optimizer names) are defined once, in
:mod:`featx.training.config`; labels are encoded by :class:`featx.data.labels.LabelEncoding`.
Nothing here asks which family a model belongs to.
"""
