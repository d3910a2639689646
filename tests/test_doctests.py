"""Every example in featx's docstrings runs and prints what it shows (the API reference
renders them)."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import featx

FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


def _modules() -> list[str]:
    return sorted(info.name for info in pkgutil.walk_packages(featx.__path__, "featx.")
                  if not info.name.endswith("__main__"))


@pytest.mark.slow
def test_docstring_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=FLAGS)
    with_examples = []
    for name in _modules():
        module = importlib.import_module(name)
        tests = [t for t in finder.find(module, name) if t.examples]
        for test in tests:
            runner.run(test)
        if tests:
            with_examples.append(name)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} of {results.attempted} docstring examples failed (above)"
    assert "featx.api" in with_examples and "featx.estimator" in with_examples, with_examples
    assert results.attempted >= 50, results
