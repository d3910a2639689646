"""Model registry and builders per family (tabular Keras, scikit-learn)."""
