"""A report as a list of blocks, rendered to Markdown and to one self-contained HTML page.

The HTML has no scripts and no external resources: the CSS is inline and the figures are PNG files beside it
(`figures/NAME.png`, with the SVG linked), so it opens from disk in any browser.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: Sequence[str]


@dataclass(frozen=True)
class Table:
    """A table of already formatted cells (strings), with a caption under it."""

    frame: pd.DataFrame
    caption: str = ""
    left: int = 1  # how many leading (text) columns are left-aligned; the rest are numbers


@dataclass(frozen=True)
class Figure:
    """`figures/<name>.png` and `.svg`, written beside the page."""

    name: str
    caption: str


Block = Heading | Para | Bullets | Table | Figure


def _md_cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(title: str, blocks: Sequence[Block]) -> str:
    out = [f"# {title}", ""]
    for b in blocks:
        if isinstance(b, Heading):
            out += [f"{'#' * b.level} {b.text}", ""]
        elif isinstance(b, Para):
            out += [b.text, ""]
        elif isinstance(b, Bullets):
            out += [f"- {item}" for item in b.items] + [""]
        elif isinstance(b, Table):
            cols = list(b.frame.columns)
            out.append("| " + " | ".join(_md_cell(c) for c in cols) + " |")
            out.append("|" + "|".join(":---" if i < b.left else "---:" for i in range(len(cols))) + "|")
            out += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in b.frame.itertuples(index=False)]
            out += ["", f"*{b.caption}*", ""] if b.caption else [""]
        elif isinstance(b, Figure):
            out += [f"![{b.caption}](figures/{b.name}.png)", "",
                    f"*{b.caption}* ([SVG](figures/{b.name}.svg))", ""]
    return "\n".join(out).rstrip() + "\n"


CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1150px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .2em; }
h2 { margin-top: 1.6em; border-bottom: 1px solid #eee; }
table { border-collapse: collapse; margin: .6em 0; font-size: 0.88em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; }
th { background: #f4f4f4; }
td { text-align: right; font-variant-numeric: tabular-nums; }
td.l { text-align: left; }
caption { caption-side: bottom; text-align: left; font-size: .85em; color: #555; padding-top: .3em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; }
figcaption { font-size: .85em; color: #555; }
"""


def _td(value: object, left: bool) -> str:
    return f'<td class="l">{html.escape(str(value))}</td>' if left else f"<td>{html.escape(str(value))}</td>"


def to_html(title: str, blocks: Sequence[Block]) -> str:
    esc = html.escape
    body = [f"<h1>{esc(title)}</h1>"]
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{esc(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            body.append(f"<p>{esc(b.text)}</p>")
        elif isinstance(b, Bullets):
            body.append("<ul>" + "".join(f"<li>{esc(str(i))}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{esc(str(c))}</th>" for c in b.frame.columns)
            rows = "".join("<tr>" + "".join(_td(v, i < b.left) for i, v in enumerate(row)) + "</tr>"
                           for row in b.frame.itertuples(index=False))
            caption = f"<caption>{esc(b.caption)}</caption>" if b.caption else ""
            body.append(f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(b, Figure):
            body.append(
                f'<figure><img src="figures/{esc(b.name)}.png" alt="{esc(b.caption)}">'
                f'<figcaption>{esc(b.caption)} (<a href="figures/{esc(b.name)}.svg">SVG</a>)</figcaption></figure>')
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>\n" + "\n".join(body)
            + "\n</body></html>\n")
