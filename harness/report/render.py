"""Rendering the report's blocks, ``(kind, payload)`` pairs with kinds h1, h2,
p, table, image, code and reload (seconds after which a browser reloads a
partial report; HTML only), as Markdown and as self-contained HTML."""
from __future__ import annotations

import base64
import html
import re

# Kept on one line in HTML: a layer list such as 784-512-512-10 (it would
# wrap at its hyphens; the text stays plain hyphens for copying) and an
# accuracy with its interval, "97.77% [97.58, 97.97]".
_LAYERS = re.compile(r"\d+(?:-\d+)+|\d+(?:\.\d+)?% \[[-\d.]+, [-\d.]+\]")


def md_escape(text, inline=False):
    """Text safe in Markdown, whatever names it holds (a sweep's, a
    variant's, an error's): no raw HTML (``<``, ``>`` and ``&`` become
    entities), no link or image (``](`` is broken), no line break (which
    could start a block of its own) and, in a table cell (``inline``), ``|``
    escaped. The ``**`` the report's own paragraphs use for bold is left alone."""
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("](", "]\\(")
    text = " ".join(text.splitlines())
    return text.replace("|", "\\|") if inline else text


def _md_table(df):
    cols = [md_escape(c, inline=True) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(md_escape(v, inline=True) for v in row.values) + " |")
    return "\n".join(lines)


def _fence(text):
    """A code fence longer than any run of backticks in ``text``, which
    then cannot close it early."""
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def render_md(blocks):
    out = []
    for kind, payload in blocks:
        if kind == "h1":
            out.append(f"# {md_escape(payload, inline=True)}")
        elif kind == "h2":
            out.append(f"## {md_escape(payload, inline=True)}")
        elif kind == "p":
            out.append(md_escape(payload))
        elif kind == "table":
            out.append(_md_table(payload))
        elif kind == "image":
            title, path = payload
            title = md_escape(title, inline=True).replace("[", "\\[").replace("]", "\\]")
            out.append(f"### {title}\n\n![{title}]({path})")
        elif kind == "code":
            fence = _fence(payload)
            out.append(f"{fence}toml\n{payload}" + ("" if payload.endswith("\n") else "\n") + fence)
    return "\n\n".join(out) + "\n"


_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1280px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}table{border-collapse:collapse;margin:1em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left}th{background:#f3f3f3}tr:nth-child(even){background:#fafafa}
img{max-width:100%;border:1px solid #eee}.nw{white-space:nowrap}.scroll{overflow-x:auto}pre{background:#f6f8fa;padding:1em;overflow:auto}h2{border-bottom:1px solid #eee}"""


def _cell(value):
    """A table cell's HTML: a label wraps only between its comma-separated
    parts ("sweep depth-width", "lr 0.001" kept whole); layer lists and
    intervals stay on one line."""
    parts = []
    for part in re.split(r", (?![^\[]*\])", str(value)):  # not inside an interval's brackets
        if " " in part and len(part) <= 40 and not _LAYERS.fullmatch(part):
            parts.append(f'<span class="nw">{html.escape(part)}</span>')
        else:
            parts.append(_LAYERS.sub(lambda m: f'<span class="nw">{m.group(0)}</span>', html.escape(part)))
    return ", ".join(parts)


def _html_table(df):
    shown = df.copy()
    shown.columns = [html.escape(str(c)) for c in df.columns]
    for col in shown.columns:
        shown[col] = [_cell(v) for v in shown[col]]
    return f'<div class="scroll">{shown.to_html(index=False, border=0, escape=False)}</div>'


def render_html(blocks, folder):
    body = []
    for kind, payload in blocks:
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{html.escape(payload)}</{kind}>")
        elif kind == "p":
            text = html.escape(payload)
            while "**" in text:  # the only markup the paragraphs use
                text = text.replace("**", "<strong>", 1).replace("**", "</strong>", 1)
            body.append(f"<p>{text}</p>")
        elif kind == "table":
            body.append(_html_table(payload))
        elif kind == "image":
            title, path = payload
            data = base64.b64encode((folder / path).read_bytes()).decode()
            body.append(f"<h3>{html.escape(title)}</h3><img alt=\"{html.escape(title)}\" "
                        f"src=\"data:image/png;base64,{data}\">")
        elif kind == "code":
            body.append(f"<pre>{html.escape(payload)}</pre>")
    title = html.escape(blocks[0][1])
    reload = "".join(f"<meta http-equiv=\"refresh\" content=\"{int(p)}\">" for k, p in blocks if k == "reload")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">{reload}<title>{title}</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
