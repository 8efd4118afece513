#!/usr/bin/env python3
"""Draws loss curves from a refrain loss.csv as a dependency-free SVG.

usage: loss_curve.py LOSS.csv OUT.svg TITLE COLUMN [COLUMN ...]
Each COLUMN is a header name of the CSV; the x axis is the `step` column, y is logarithmic.
"""
import csv
import math
import sys


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    path, out, title, columns = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"{path} has no rows")
    steps = [float(r["step"]) for r in rows]
    series = {c: [float(r[c]) for r in rows] for c in columns}
    values = [v for s in series.values() for v in s if v > 0]
    lo, hi = math.log10(min(values)), math.log10(max(values))
    if hi - lo < 1e-9:
        hi = lo + 1
    width, height, margin = 720, 400, 60
    x0, x1 = min(steps), max(steps)
    if x1 == x0:
        x1 = x0 + 1

    def x(step):
        return margin + (step - x0) / (x1 - x0) * (width - 2 * margin)

    def y(value):
        return height - margin - (math.log10(value) - lo) / (hi - lo) * (height - 2 * margin)

    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="24" text-anchor="middle" font-size="15">{title}</text>',
        f'<line x1="{margin}" y1="{height - margin}" x2="{width - margin}" '
        f'y2="{height - margin}" stroke="black"/>',
        f'<line x1="{margin}" y1="{margin}" x2="{margin}" y2="{height - margin}" stroke="black"/>',
        f'<text x="{width / 2}" y="{height - 20}" text-anchor="middle">step</text>',
    ]
    for decade in range(math.floor(lo), math.ceil(hi) + 1):
        for m in (1, 2, 5):
            v = m * 10 ** decade
            if lo <= math.log10(v) <= hi:
                parts.append(
                    f'<line x1="{margin}" y1="{y(v):.1f}" x2="{width - margin}" y2="{y(v):.1f}" '
                    f'stroke="#ddd"/><text x="{margin - 6}" y="{y(v) + 4:.1f}" '
                    f'text-anchor="end">{v:g}</text>'
                )
    for i in range(6):
        s = x0 + (x1 - x0) * i / 5
        parts.append(
            f'<text x="{x(s):.1f}" y="{height - margin + 16}" text-anchor="middle">{s:.0f}</text>'
        )
    for i, (name, vals) in enumerate(series.items()):
        colour = colours[i % len(colours)]
        points = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in zip(steps, vals) if v > 0)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        parts.append(
            f'<text x="{width - margin - 4}" y="{margin + 16 * (i + 1)}" text-anchor="end" '
            f'fill="{colour}">{name}</text>'
        )
    parts.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
