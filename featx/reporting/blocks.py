"""Report blocks rendered as Markdown or as self-contained HTML: the one place reports are rendered.

A report is a list of blocks, each a tuple whose first item names its kind:

``("h1" | "h2" | "h3", text)``
    A heading.
``("p", text)``
    A paragraph; one starting with ``WARNING`` is shown in bold (in red in HTML).
``("facts", [(name, value), ...])``
    A bulleted list of named values.
``("table", headers, rows)``
    A table; ``rows`` is a list of lists of cells.
``("img", path, alt)``
    A figure (``path`` relative to the report's folder).
``("code", lines)``
    Lines shown verbatim (a configuration).

Every text is plain text, whatever it holds: file names, genre labels and error
messages come from users' data, so the renderers escape it. In Markdown that means
HTML's ``<``, ``>`` and ``&`` as entities, the characters that make links, images,
emphasis, code, headings, math and table cells (``\\ ` * _ [ ] # ~ $ |``) with a
backslash, and line breaks and other control characters as a space or U+FFFD, so a
label such as ``<script>``, ``[x](javascript:...)`` or ``a|b`` (or one holding a
newline) is shown as written, in its own cell, and never becomes markup. Only the
markup the renderer adds itself (headings, bold names, table rules) is Markdown.
"""
from __future__ import annotations

import base64
import logging
import re
import unicodedata
from html import escape
from pathlib import Path

logger = logging.getLogger(__name__)

_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
#: Characters escaped with a backslash wherever they stand (``_`` only at a word's edge,
#: where it can open or close emphasis; ``snake_case`` stays readable).
_SPECIAL = re.compile(r"[\\`*\[\]#~$|]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
#: What may not start a paragraph's line: a list item, a quote, a setext rule, a numbered item.
_LINE_START = re.compile(r"^(?:[-+=]|\d+(?=[.)]))")
#: Characters that reorder the text after them (right-to-left overrides and isolates).
_DIRECTION = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: Line breaks a Markdown reader or an editor honours.
_BREAKS = re.compile(r"\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")


def _visible(text: str) -> str:
    """``text`` on one line: breaks become spaces; other control and direction-override
    characters become U+FFFD (they would hide or reorder what follows)."""
    text = _BREAKS.sub(" ", str(text)).replace("\t", " ")
    return "".join("\ufffd" if ch in _DIRECTION or unicodedata.category(ch) == "Cc" else ch for ch in text)


def escape_markdown(text, *, line_start: bool = False) -> str:
    """``text`` as Markdown that shows exactly that text on one line (see the module docstring).

    Parameters
    ----------
    text : object
        Shown as ``str(text)``.
    line_start : bool
        The text starts a line (a paragraph): a leading ``-``, ``+``, ``=``, ``>`` or
        ``1.`` is escaped too, and leading spaces dropped (four would make a code block).

    Examples
    --------
    >>> escape_markdown("<img src=x onerror=alert(1)>")
    '&lt;img src=x onerror=alert(1)&gt;'
    >>> escape_markdown("[x](javascript:alert(1)) | f1_macro")
    '\\\\[x\\\\](javascript:alert(1)) \\\\| f1_macro'
    """
    text = _visible(text)
    if line_start:
        text = text.lstrip(" ")
    text = "".join(_ENTITIES.get(ch, ch) for ch in text)
    text = _SPECIAL.sub(lambda m: "\\" + m.group(0), text)
    if line_start:  # '1.' -> '1\\.', '-' -> '\\-'
        text = _LINE_START.sub(lambda m: m.group(0) + "\\" if m.group(0)[0].isdigit() else "\\" + m.group(0),
                               text, count=1)
    return text


def _md_cell(text) -> str:
    return escape_markdown(text)


def _fence(lines: list[str]) -> str:
    """A code fence longer than any run of backticks in ``lines``."""
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    return "`" * max(3, longest + 1)


def render_markdown(blocks: list) -> str:
    """The Markdown text of ``blocks`` (see the module docstring); every text is escaped."""
    lines: list[str] = []
    for kind, *args in blocks:
        if kind in ("h1", "h2", "h3"):
            lines += [f"{'#' * int(kind[1])} {escape_markdown(args[0])}", ""]
        elif kind == "p":
            text = escape_markdown(args[0], line_start=True)
            lines += [f"**{text}**" if str(args[0]).startswith("WARNING") else text, ""]
        elif kind == "facts":
            lines += [f"- **{escape_markdown(k)}:** {escape_markdown(v)}" for k, v in args[0]] + [""]
        elif kind == "table":
            headers, rows = args
            lines.append("| " + " | ".join(_md_cell(h) for h in headers) + " |")
            lines.append("|" + "---|" * len(headers))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            lines.append("")
        elif kind == "img":
            lines += [f"![{escape_markdown(args[1])}]({_link_target(args[0])})", ""]
        elif kind == "code":
            shown = [_visible(line) for line in args[0]]
            fence = _fence(shown)
            lines += [fence, *shown, fence, ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _link_target(path) -> str:
    """A figure's relative path as a Markdown link target (``<...>``, specials escaped, unless plain)."""
    text = _visible(Path(path).as_posix())
    if re.fullmatch(r"[A-Za-z0-9._/-]+", text):
        return text
    return "<" + re.sub(r"[<>\\]", lambda m: "\\" + m.group(0), text) + ">"


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:13px}"
        "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f0f3f7}"
        "td:first-child,th:first-child{text-align:left}img{max-width:100%}"
        ".warning{color:#a00;font-weight:bold}")


def render_html(blocks: list, base: Path, title: str) -> str:
    """A self-contained HTML page: every figure is embedded as a base64 PNG."""
    parts = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
             f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"]
    for kind, *args in blocks:
        if kind in ("h1", "h2", "h3"):
            parts.append(f"<{kind}>{escape(args[0])}</{kind}>")
        elif kind == "p":
            cls = " class='warning'" if args[0].startswith("WARNING") else ""
            parts.append(f"<p{cls}>{escape(args[0])}</p>")
        elif kind == "facts":
            parts.append("<ul>" + "".join(f"<li><b>{escape(k)}:</b> {escape(v)}</li>" for k, v in args[0])
                         + "</ul>")
        elif kind == "table":
            headers, rows = args
            head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
            body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "img":
            path = base / args[0]
            if path.exists():
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                parts.append(f"<figure><img alt='{escape(args[1])}' src='data:image/png;base64,{data}'>"
                             f"<figcaption>{escape(args[1])}</figcaption></figure>")
        elif kind == "code":
            parts.append("<pre>" + escape("\n".join(str(line) for line in args[0])) + "</pre>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
