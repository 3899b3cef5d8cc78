"""A self-contained HTML report of the summary view: opens offline, no network needed.

plotly.js is inlined once (with the first figure); later figures reuse it.
"""

from __future__ import annotations

import datetime as dt
import html

import pandas as pd
import plotly.graph_objects as go


def _md_bold_to_html(text: str) -> str:
    parts = html.escape(text).split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


def build_report(
    title: str,
    table: pd.DataFrame,
    sentences: list[str],
    figures: list[go.Figure],
    notes: list[str] | None = None,
    sections: list[tuple[str, pd.DataFrame | None, list[str]]] | None = None,
) -> str:
    """The report as one HTML string; `sections` are further (heading, table, sentences)
    blocks after the main table (speed and steadiness, the sweep's answer)."""
    figs_html = []
    for i, fig in enumerate(figures):
        figs_html.append(
            fig.to_html(full_html=False, include_plotlyjs=(i == 0), config={"displaylogo": False})
        )
    extra = "".join(
        f"<h2>{html.escape(head)}</h2>\n"
        + (_table_html(t) if t is not None and not t.empty else "")
        + (
            "<ul>" + "".join(f"<li>{_md_bold_to_html(x)}</li>" for x in lines) + "</ul>"
            if lines
            else ""
        )
        for head, t, lines in sections or []
    )
    table_html = _table_html(table)
    items = "\n".join(f"<li>{_md_bold_to_html(s)}</li>" for s in sentences)
    note_items = "\n".join(f"<li>{html.escape(n)}</li>" for n in (notes or []))
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return _page(title, stamp, items, table_html, extra, figs_html, note_items)


def _table_html(table: pd.DataFrame) -> str:
    return table.to_html(
        index=False,
        na_rep="n/a",
        float_format=lambda v: f"{v:.4g}",
        border=0,
        classes="summary",
        escape=True,
    )


def _page(title, stamp, items, table_html, extra, figs_html, note_items) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table.summary {{ border-collapse: collapse; font-size: 0.9em; }}
table.summary th, table.summary td {{ padding: 4px 8px; border-bottom: 1px solid #ddd;
  text-align: right; }}
table.summary th:first-child, table.summary td:first-child {{ text-align: left; }}
.small {{ color: #666; font-size: 0.85em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="small">Generated {stamp} by the SGG dashboard.</p>
<h2>In plain words</h2>
<ul>{items}</ul>
<h2>Numbers</h2>
{table_html}
{extra}
<h2>Figures</h2>
{"".join(figs_html)}
<h2>How the numbers are defined</h2>
<ul class="small">{note_items}</ul>
</body></html>
"""
