"""Model families, their registry and the builders of every network and estimator.

One adapter class per family (:mod:`featx.models.base`) owns everything that differs
between families: building, fitting with its data feed, ``predict_proba``, saving and
loading, and the checks its bundle needs. :mod:`featx.models.registry` maps each model
name to its family, builder, hyperparameters and training defaults.
"""
