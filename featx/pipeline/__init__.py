"""Train-and-save: the pipeline above training, bundles and reports.

:func:`featx.pipeline.train.train_bundle` cross-validates a configuration, fits the
model to keep, and writes its bundle with the evaluation: ``featx train``, a sweep's
best configuration and :func:`featx.train` all go through it.
"""
