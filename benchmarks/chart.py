"""The cost curve as an SVG chart drawn by hand (no plotting library): time and peak memory against the shop's size."""

import math
from html import escape

WIDTH, HEIGHT = 900, 420
PANEL_WIDTH = 380
MARGIN_LEFT, MARGIN_TOP, MARGIN_BOTTOM = 70, 50, 60
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _log_ticks(low, high):
    """Powers of ten spanning low..high."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    return [10 ** power for power in range(first, last + 1)]


def _label(value, unit):
    if unit == "s":
        return f"{value * 1000:g} ms" if value < 1 else f"{value:g} s"
    return f"{value:g} {unit}"


def _panel(left, title, points, steps, value_of, unit):
    """One log-log panel: a line per step through its (users, value) points."""
    top, height = MARGIN_TOP, HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    users = [point["users"] for point in points]
    values = [value_of(point[step]) for point in points for step in steps if value_of(point[step])]
    x_ticks, y_ticks = _log_ticks(min(users), max(users)), _log_ticks(min(values), max(values))

    def x(value):
        low, high = math.log10(x_ticks[0]), math.log10(x_ticks[-1])
        return left + (math.log10(value) - low) / ((high - low) or 1) * PANEL_WIDTH

    def y(value):
        low, high = math.log10(y_ticks[0]), math.log10(y_ticks[-1])
        return top + height - (math.log10(value) - low) / ((high - low) or 1) * height

    parts = [f'<text x="{left + PANEL_WIDTH / 2}" y="{top - 20}" text-anchor="middle" font-weight="bold">'
             f'{escape(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{PANEL_WIDTH}" height="{height}" fill="none" stroke="#999"/>']
    for tick in x_ticks:
        parts.append(f'<line x1="{x(tick):.1f}" y1="{top}" x2="{x(tick):.1f}" y2="{top + height}" stroke="#eee"/>')
        parts.append(f'<text x="{x(tick):.1f}" y="{top + height + 18}" text-anchor="middle">{tick:g}</text>')
    for tick in y_ticks:
        parts.append(f'<line x1="{left}" y1="{y(tick):.1f}" x2="{left + PANEL_WIDTH}" y2="{y(tick):.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{escape(_label(tick, unit))}</text>')
    parts.append(f'<text x="{left + PANEL_WIDTH / 2}" y="{top + height + 40}" text-anchor="middle">'
                 'users (× 10 customers), log scale</text>')
    for colour, step in zip(COLOURS, steps):
        line = [(x(point["users"]), y(value_of(point[step]))) for point in points if value_of(point[step])]
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in line)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>' for px, py in line]
    return parts


def cost_chart(points, steps):
    """The whole SVG document: seconds per step on the left, peak memory of its process on the right."""
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT + 30}" '
             'font-family="sans-serif" font-size="12">', '<rect width="100%" height="100%" fill="white"/>']
    parts += _panel(MARGIN_LEFT, "time per step (log-log; slope 1 = linear)", points, steps,
                    lambda figures: figures["seconds"], "s")
    parts += _panel(MARGIN_LEFT + PANEL_WIDTH + 80, "peak memory of the step's process (VmHWM)", points, steps,
                    lambda figures: figures["peak_rss"] / 1e6 if figures["peak_rss"] else None, "MB")
    for number, (colour, step) in enumerate(zip(COLOURS, steps)):
        left = MARGIN_LEFT + number * 150
        parts.append(f'<rect x="{left}" y="{HEIGHT + 5}" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{left + 16}" y="{HEIGHT + 15}">{escape(step)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
