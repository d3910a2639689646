"""Errors raised by the library name its parameters, never command-line options."""
from __future__ import annotations

from pathlib import Path

import pytest


def test_library_errors_name_parameters(tmp_path):
    import numpy as np

    import featx
    from featx.sweep.space import space_from_options
    from featx.models.registry import get_model

    with pytest.raises(featx.BundleError) as info:
        featx.load_bundle(tmp_path / "nothing")
    assert " -o " not in str(info.value) and "featx train" not in str(info.value)
    with pytest.raises(ValueError) as info:
        featx.extract_features(np.zeros((3, 3, 3)), sr=22050)
    assert isinstance(info.value, featx.AudioError) and "shape=(3, 3, 3)" in str(info.value)
    for params in (["n_neighbors"], ["n_neighbors=1,,3"], []):
        with pytest.raises(featx.ConfigError) as info:
            space_from_options(get_model("knn"), params)
        assert "--" not in str(info.value), str(info.value)


def test_library_sources_hold_no_option_names():
    import ast
    import re

    import featx

    root = Path(featx.__file__).parent
    flag = re.compile(r"(?:^|[\s(])--[a-z]")
    offenders = []
    for path in root.rglob("*.py"):
        if "cli" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                texts = [n.value for n in ast.walk(node.exc)
                         if isinstance(n, ast.Constant) and isinstance(n.value, str)]
                offenders += [f"{path.name}:{node.lineno}: {t}" for t in texts if flag.search(t)]
    assert not offenders, offenders
