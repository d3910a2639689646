"""Files featx writes: atomic writes, the journal, and the guard for output folders."""
