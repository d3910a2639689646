"""Corpus-level extraction: labels, parallel workers, resumable atomic CSV output.

Layers: :func:`extract_features` turns one audio file into rows;
:func:`run_extraction` turns a list of inputs into one CSV.

How a run survives interruption
-------------------------------
Finished files are appended, one JSON line each, to a journal ``OUT.partial``
(:class:`featx.io.journal.Journal`) that starts with a header holding the settings.
Only the main process writes it, each record with a single write, and it is locked
for the whole run: a second run on the same output is refused. When a run is
interrupted (Ctrl-C, ``kill -9``) the journal keeps every file finished so far; at
worst its last line is cut short, and that line is discarded on the next run.
Re-running the same command reads the journal, extracts only the files not in it,
and then writes ``OUT`` in input order to a temporary file that atomically replaces
``OUT``: the output is either absent, the previous complete file, or the new
complete file, never half-written.

Identity and change
-------------------
Each file is keyed by its id, its path under the input folder it was found in
(:mod:`featx.extract.corpus`); records carry the file's size and modification
time. After a finished run, ``OUT.settings.json`` holds every file's fingerprint
and label and the labels CSV's SHA-256: a re-run reuses the rows of unchanged files
from ``OUT``, analyses replaced ones again, and applies the current labels.
"""
