"""How featx runs inside a process: the lowest layer, beside :mod:`featx.io`.

* :mod:`featx.runtime.progress`: progress bars on a terminal, periodic lines elsewhere;
* :mod:`featx.runtime.threads`: BLAS/OpenMP thread limits for analyses and fits;
* :mod:`featx.runtime.allocator`: glibc allocator settings for the extraction processes;
* :mod:`featx.runtime.keras`: Keras imported once, quietly, with featx's backend settings.
"""
