"""Sizes the compiled kernels are built for, shared by their source and their loader.

:mod:`featx.features._kernels` (the numba source, imported only to build) and
:mod:`featx.features.native` (which loads the built code and sizes the buffers it passes)
both read them from here, so neither imports the other to learn them.
"""

#: Lanes (rows) the median kernel filters together; its scratch buffers are sized by it.
LANES = 96
#: Frames the magnitude kernel handles together (one SIMD vector of float32).
BLOCK = 16
