"""Read and validate feature tables; track/artist groups; leakage-free splits.

A feature table is a CSV with one row per analysed segment (or whole file):
``filename``, ``length``, the numeric feature columns and, for training data,
``label``. Rows are grouped by *track* (the filename with its segment index
removed: ``rock.00001.7.wav`` belongs to ``rock.00001``) so that no split puts
segments of one track on both sides.
"""
