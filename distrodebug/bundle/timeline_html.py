"""The timeline's section of the HTML report: a picture (inline SVG) and the rows as a table.

No script and no external resource (the page's Content-Security-Policy forbids both anyway);
every string is escaped, since file names, command lines and log lines come from the target.
"""

from __future__ import annotations

import html

from distrodebug.bundle.timeline import Timeline
from distrodebug.clock import iso, parse_time

TIMELINE_CSS = """
.tl svg{width:100%;height:auto;border:1px solid #eceef2;border-radius:4px;background:#fbfcfd}
.tl .lane{font:11px system-ui,sans-serif;fill:#5b6475}.tl .axis{stroke:#d5d9e0}
.k-event{fill:#3b5bdb}.k-process{fill:#0a7d32}.k-log{fill:#7048e8}.k-file{fill:#9a6700}
.k-dump{fill:#1d2330}.lv-warning{fill:#b42318}tr.lv-warning td{background:#fff1f0}
td.when{white-space:nowrap;font-variant-numeric:tabular-nums}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _when(time: str, precision: float) -> str:
    """A whole-second time without the fraction it never had."""
    return time.replace(".000000Z", "Z") if precision >= 1 else time


def _td(value: object, cls: str = "") -> str:
    attr = f' class="{_e(cls)}"' if cls else ""
    return f"<td{attr}>{_e(value)}</td>"


_LANES = ("event", "process", "log", "file", "dump")
_SVG_WIDTH, _LANE_HEIGHT, _LABEL = 1000, 26, 70
#: Rows the page's table shows at most (the newest); the picture draws every row it can place.
TIMELINE_ROWS = 2000


def timeline_section(timeline: Timeline) -> str:
    """A lane per kind on one time axis (inline SVG, each mark titled with its row), then the
    rows as a table. The axis runs from the target's creation (image files are older and stay
    in the table, grouped) to the last row."""
    rows = timeline.events
    out = [f"<h2>Timeline ({len(rows)} rows, UTC)</h2><div class=tl>"]
    if timeline.notes:
        out.append("<ul class=sub>" + "".join(f"<li>{_e(n)}</li>" for n in timeline.notes) + "</ul>")
    placed = [(parse_time(r.time), r) for r in rows if r.kind in _LANES]
    start = parse_time(timeline.target_created) if timeline.target_created else None
    drawable = [(t, r) for t, r in placed if t is not None and (start is None or t >= start)]
    if drawable:
        drawable.sort(key=lambda item: item[0])
        first = drawable[0][0]
        seconds = [(t - first).total_seconds() for t, _ in drawable]
        xs, breaks = axis_positions(seconds)
        width = _SVG_WIDTH - _LABEL - 10
        height = _LANE_HEIGHT * len(_LANES) + 30
        last = drawable[-1][0]
        svg = [f'<svg viewBox="0 0 {_SVG_WIDTH} {height}" role=img '
               f'aria-label="timeline from {_e(iso(first))} to {_e(iso(last))}">']
        for i, lane in enumerate(_LANES):
            y = 15 + i * _LANE_HEIGHT
            svg.append(f'<text class=lane x=4 y="{y + 4}">{_e(lane)}</text>'
                       f'<line class=axis x1="{_LABEL}" x2="{_SVG_WIDTH - 10}" y1="{y}" y2="{y}"/>')
        for at, gap in breaks:
            x = _LABEL + width * at
            svg.append(f'<line class=axis x1="{x:.1f}" x2="{x:.1f}" y1=5 y2="{height - 22}" '
                       f'stroke-dasharray="3 3"/><text class=lane x="{x:.1f}" y="{height - 18}" '
                       f"text-anchor=middle>{_e(_duration(gap))} later</text>")
        for x_frac, (_, row) in zip(xs, drawable, strict=True):
            x = _LABEL + width * x_frac
            y = 15 + _LANES.index(row.kind) * _LANE_HEIGHT
            cls = f"k-{row.kind}" + (" lv-warning" if row.level == "warning" else "")
            svg.append(f'<circle class="{cls}" cx="{x:.1f}" cy="{y}" r=4><title>'
                       f"{_e(row.time)} {_e(row.kind)}: {_e(row.text[:300])}</title></circle>")
        axis_y = height - 4
        svg.append(f'<text class=lane x="{_LABEL}" y="{axis_y}">{_e(iso(first))}</text>'
                   f'<text class=lane x="{_SVG_WIDTH - 10}" y="{axis_y}" text-anchor=end>'
                   f"{_e(iso(last))}</text></svg>")
        out.append("".join(svg))
        hidden = len(placed) - len(drawable)
        if hidden:
            out.append(f"<p class=sub>{hidden} rows older than the target's creation are in the "
                       "table only.</p>")
    shown = rows[-TIMELINE_ROWS:]
    if len(rows) > len(shown):
        out.append(f"<p class=sub>The table shows the newest {len(shown)} of {len(rows)} rows; "
                   "'distrodebug report --timeline' shows them all.</p>")
    table_rows = [
        f'<tr class="lv-{_e(r.level)}"><td class="when mono">{_e(_when(r.time, r.precision))}</td>'
        f"{_td(r.kind)}"
        f"{_td(r.source)}{_td(r.text, 'mono')}</tr>"
        for r in shown
    ]
    if table_rows:
        out.append("<table><thead><tr><th>time</th><th>kind</th><th>source</th><th>what</th></tr>"
                   "</thead><tbody>" + "".join(table_rows) + "</tbody></table>")
    else:
        out.append("<p class=sub>Nothing in this bundle carries a time.</p>")
    out.append("</div>")
    return "\n".join(out)


def axis_positions(seconds: list[float], share: float = 0.08
                   ) -> tuple[list[float], list[tuple[float, float]]]:
    """Positions in [0, 1] for sorted times (seconds from the start), with long idle gaps cut
    short so that bursts stay readable: a gap longer than ``share`` of the whole span is drawn
    ``2 * share`` as wide as the rest together. Returns the positions and the cut gaps as
    (position, real length in seconds), for the page to mark."""
    if not seconds:
        return [], []
    span = seconds[-1] - seconds[0]
    gaps = [b - a for a, b in zip(seconds, seconds[1:], strict=False)]
    # A long gap is drawn as wide as a share of the busy part, not of the whole span.
    short = [g for g in gaps if g <= span * share]
    # Only when some gaps are short is there a burst to keep readable; else the scale is linear.
    cap = max(sum(short) * share * 2, max(short)) if sum(short) > 0 else span
    steps = [0.0]
    breaks: list[tuple[float, float]] = []
    for before, after in zip(seconds, seconds[1:], strict=False):
        gap = after - before
        steps.append(steps[-1] + min(gap, cap))
        if gap > cap > 0:
            breaks.append((steps[-1] - cap / 2, gap))
    total = steps[-1] or 1.0
    return [x / total for x in steps], [(at / total, gap) for at, gap in breaks]


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            whole, rest = divmod(int(seconds), size)
            smaller = {"d": ("h", 3600), "h": ("m", 60), "m": ("s", 1)}[unit]
            return f"{whole}{unit} {rest // smaller[1]}{smaller[0]}"
    return f"{seconds:.1f}s"
