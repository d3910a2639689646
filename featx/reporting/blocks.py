"""Report blocks rendered as Markdown or as self-contained HTML."""
from __future__ import annotations

import logging
from pathlib import Path



logger = logging.getLogger(__name__)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: list) -> str:
    lines: list[str] = []
    for kind, *args in blocks:
        if kind in ("h1", "h2", "h3"):
            lines += [f"{'#' * int(kind[1])} {args[0]}", ""]
        elif kind == "p":
            text = args[0]
            lines += [f"**{text}**" if text.startswith("WARNING") else text, ""]
        elif kind == "facts":
            lines += [f"- **{k}:** {v}" for k, v in args[0]] + [""]
        elif kind == "table":
            headers, rows = args
            lines.append("| " + " | ".join(_md_cell(h) for h in headers) + " |")
            lines.append("|" + "---|" * len(headers))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            lines.append("")
        elif kind == "img":
            lines += [f"![{args[1]}]({args[0]})", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:13px}"
        "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f0f3f7}"
        "td:first-child,th:first-child{text-align:left}img{max-width:100%}"
        ".warning{color:#a00;font-weight:bold}")


def render_html(blocks: list, base: Path, title: str) -> str:
    """A self-contained HTML page: every figure is embedded as a base64 PNG."""
    import base64
    from html import escape

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
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
