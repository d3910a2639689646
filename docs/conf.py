"""Sphinx configuration of featx's documentation.

Build it strictly (warnings are errors, every cross-reference must resolve)::

    pip install '.[docs]'
    python -m sphinx -W --keep-going -n -b html docs docs/_build/html
"""
from __future__ import annotations

import featx

project = "featx"
author = "the featx developers"
copyright = "featx developers, MIT licence"
release = featx.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "sphinx_click",
]

exclude_patterns = ["_build"]
root_doc = "index"

# numpydoc renders the docstrings' sections; the API pages list members themselves
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
autodoc_typehints = "none"  # the numpydoc "Parameters" sections say the types

# Offline builds: no inventory is fetched, so third-party names in signatures and
# docstrings are not links; nitpick_ignore_regex lists them instead of failing the build.
intersphinx_mapping: dict = {}
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(np|numpy|pd|pandas|sklearn|keras|tf|click|zarr|pyarrow|dask|pathlib|os|typing|collections)(\..*)?"),
    (r"py:.*", r"(Path|PathLike|DataFrame|Series|ndarray|Callable|Iterable|Iterator|Sequence|Mapping|Any)"),
]



def _public_alias(app, env, node, contnode):
    """Resolve ``featx.NAME`` (and a bare ``NAME``) of ``featx.__all__`` to where NAME is defined.

    The docstrings name the public API as users call it (``featx.train``); the API pages
    document each name under its defining module (``featx.api.train``).
    """
    if node.get("refdomain") != "py":
        return None
    domain = env.get_domain("py")
    parts = node["reftarget"].split(".")
    if parts[0] == "featx" and len(parts) > 1:
        parts = parts[1:]
    if parts[0] in featx._EXPORTS:
        target = ".".join([featx._EXPORTS[parts[0]], *parts])
        return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], target,
                                   node, contnode)
    if not node.get("refspecific"):
        # a name relative to another module of featx (``ModelSpec.resolve`` in
        # featx.models.base): look it up as ``.ModelSpec.resolve``, which must be unique
        node["refspecific"] = True
        return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"],
                                   node["reftarget"], node, contnode)
    return None


def _escape_click_text(app, ctx, lines):
    """Help texts are plain text (``*_var``, ``tag_*``); rST would read ``*`` as emphasis
    and ``tag_`` as a link."""
    lines[:] = [line if line.lstrip().startswith("..") else
                line.replace("*", "\\*").replace("_", "\\_") for line in lines]


def setup(app):
    app.connect("missing-reference", _public_alias)
    app.connect("sphinx-click-process-description", _escape_click_text)
    app.connect("sphinx-click-process-options", _escape_click_text)


html_theme = "pydata_sphinx_theme"
html_title = f"featx {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_static_path: list = []
