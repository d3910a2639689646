"""Corpus-level extraction: labels, parallel workers, resumable atomic CSV output.

Layers: :func:`extract_features` turns one audio file into rows;
:func:`run_extraction` turns a list of inputs into one CSV.

How a run survives interruption
-------------------------------
Finished files are appended, one JSON line each, to a journal ``OUT.partial`` that
starts with a header holding the settings. Only the main process writes it, each
record with a single write. When a run is interrupted (Ctrl-C, ``kill -9``) the
journal keeps every file finished so far; at worst its last line is cut short, and
that line is discarded on the next run. Re-running the same command reads the
journal, extracts only the files not in it, and then writes ``OUT`` in input order
to a temporary file that atomically replaces ``OUT``: the output is either absent,
the previous complete file, or the new complete file, never half-written.
"""
