"""The one rule for the column names of every table featx reads (CSV, Parquet, DataFrame)."""
from __future__ import annotations

from ..errors import DataError

__all__ = ["column_names"]


def column_names(names, where) -> list[str]:
    """The names of a table's columns as featx reads them, or one DataError line.

    The one rule for every table featx reads (CSV, Parquet, DataFrame): a name is
    taken without its surrounding white space (``' tempo'`` is ``tempo``), may not be
    empty, and may name one column only (``tempo`` and ``' tempo'`` are refused, naming
    both spellings).

    Parameters
    ----------
    names : sequence
        The column names as stored (converted with ``str``).
    where : str or Path
        The table, as messages name it.
    """
    out: list[str] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(names):
        name = str(raw).strip()
        if not name:
            raise DataError(f"{where}: column {i + 1} has an empty name in the header; expected a "
                            "name for every column (a saved row index? write the table without it)")
        if name in seen:
            first = str(names[seen[name]])
            spelled = "" if first == str(raw) else (
                f", spelled {first!r} and {str(raw)!r}: names are read without surrounding spaces")
            raise DataError(
                f"{where}: column {name!r} appears more than once in the header (columns {seen[name] + 1} "
                f"and {i + 1}{spelled}); expected each column name once"
            )
        seen[name] = i
        out.append(name)
    return out
