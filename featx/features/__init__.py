"""The numeric core: settings and columns, shared spectra, summary statistics, kernels. No I/O."""
