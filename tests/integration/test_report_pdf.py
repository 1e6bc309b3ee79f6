"""The PDF summaries of `make dev`'s walk-through reports show their charts.

Publishes the walk-through's health check and retrospective (tests/dev.py) through the local
gateway, downloads each PDF attachment from the simulator, renders its first page to PNG with
`pdftoppm -r 50 -png` (poppler-utils, `make test-tools`) and reads the chart back from the
pixels: one bar per dimension in its band's colour, as long as its score, with the previous
score's marker; a vote bar per item as long as its votes against the section's most voted, and
the top items highlighted. A PDF of plain text has none of these pixels.
"""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

from tests import dev

from . import jobs

DPI = 50
PX = DPI / 72  # pixels per point
# The colours and sizes shared/src/reports/pdf.rs draws with.
RED, AMBER, GREEN = (0xD3, 0x2F, 0x2F), (0xF5, 0xA6, 0x23), (0x2E, 0x7D, 0x32)
TRACK, MARKER = (0xE3, 0xE6, 0xEA), (0x10, 0x10, 0x10)
VOTE, HIGHLIGHT = (0x7B, 0x1F, 0xA2), (0xFF, 0xF3, 0xC4)
BAR_W, VOTE_W, MARGIN = 220, 28, 50


def band(score: float):
    return GREEN if score >= 7 else AMBER if score >= 4 else RED


def png_pixels(path: Path) -> list[list[tuple[int, int, int]]]:
    """Rows of RGB pixels of an 8-bit RGB, non-interlaced PNG (what pdftoppm writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert (depth, color, interlace) == (8, 2, 0), (depth, color, interlace)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw, stride, rows, prev = zlib.decompress(idat), width * 3, [], bytearray(width * 3)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - 3] if i >= 3 else 0
            b, c = prev[i], prev[i - 3] if i >= 3 else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append([tuple(line[x * 3:x * 3 + 3]) for x in range(width)])
        prev = line
    return rows


def near(pixel, color, tolerance=16) -> bool:
    return all(abs(p - c) <= tolerance for p, c in zip(pixel, color))


def runs(rows, color) -> list[tuple[int, int, int]]:
    """Horizontal stripes of `color`: (first row, last row, row in the middle), top to bottom."""
    hit = [any(near(p, color) for p in row) for row in rows]
    out, start = [], None
    for y, h in enumerate(hit + [False]):
        if h and start is None:
            start = y
        elif not h and start is not None:
            out.append((start, y - 1, (start + y - 1) // 2))
            start = None
    return out


def extent(row, colors) -> tuple[int, int]:
    """The first stretch of pixels in `colors`, allowing 2-pixel gaps (anti-aliased edges)."""
    xs = [x for x, p in enumerate(row) if any(near(p, c) for c in colors)]
    if not xs:
        return (0, -1)
    last = xs[0]
    for x in xs[1:]:
        if x - last > 3:
            break
        last = x
    return (xs[0], last)


def first_page_png(pdf: bytes, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", str(DPI), "-png", "-f", "1", "-l", "1", str(path), str(tmp_path / name)],
                   check=True, capture_output=True)
    [png] = sorted(tmp_path.glob(f"{name}-*1.png"))
    return png


def published_pdf(bridge, tenant, report) -> bytes:
    r = jobs.publish(bridge, tenant, report)
    assert r.status_code == 200, r.text
    [attachment] = jobs.attachments(bridge, r.json()["page_id"])
    return jobs.attachment_bytes(attachment)


def test_the_health_checks_pdf_shows_a_bar_per_dimension_by_band_with_the_previous_score(bridge, tmp_path):
    bridge, tenant, _ = jobs.confluence_tenant(bridge, "cloud", "SPA")
    report = dev.DEMO_HEALTH_CHECK
    pdf = published_pdf(bridge, tenant, report)
    rows = png_pixels(first_page_png(pdf, tmp_path, "health-check"))

    bars = sorted((stripe, color) for color in (RED, AMBER, GREEN) for stripe in runs(rows, color))
    dims = report["dimensions"]
    assert [color for _, color in bars] == [band(d["score"]) for d in dims], "one bar per dimension, coloured by band"
    for ((top, bottom, y), color), d in zip(bars, dims):
        assert 6 <= bottom - top + 1 <= 10, "a 12 pt bar is 8 px high at 50 dpi"
        first, last = extent(rows[y], [color])
        track_first, track_last = extent(rows[y], [color, TRACK, MARKER])
        assert track_first == first and abs((track_last - track_first + 1) - BAR_W * PX) <= 2, "the 0-10 scale"
        assert abs((last - first + 1) - BAR_W * PX * d["score"] / 10) <= 2, (d["name"], first, last)
        # The previous score's marker: dark pixels where the previous score falls, just above the bar.
        marker_x = first + BAR_W * PX * d["previous_score"] / 10
        above = rows[top - 1]
        assert any(near(above[x], MARKER, 60) for x in range(int(marker_x) - 2, int(marker_x) + 3)), d["name"]

    text = jobs.pdf_text(pdf, tmp_path)
    for d in dims:
        assert d["name"] in text
    # Colour is never the only cue: the number, the band's name and the trend are printed.
    assert "7.5 / 10 · Good · ↑ up · previous 6.0" in text
    assert "3.5 / 10 · Needs attention · ↓ down · previous 5.0" in text
    assert "page 1 of 1" in text


def test_the_retrospectives_pdf_shows_vote_bars_the_top_items_and_the_action_items(bridge, tmp_path):
    bridge, tenant, _ = jobs.confluence_tenant(bridge, "cloud", "SPA")
    report = dev.DEMO_RETROSPECTIVE
    pdf = published_pdf(bridge, tenant, report)
    rows = png_pixels(first_page_png(pdf, tmp_path, "retrospective"))

    expected = []  # (votes, the section's most) of each voted item, top to bottom
    highlighted = 0
    for section in report["sections"]:
        votes = sorted((i["votes"] for i in section["items"]), reverse=True)
        expected += [(v, votes[0]) for v in votes if v > 0]
        highlighted += min(3, sum(1 for v in votes if v > 0))
    bars = runs(rows, VOTE)
    assert len(bars) == len(expected), bars
    for (_, _, y), (votes, most) in zip(bars, expected):
        first, last = extent(rows[y], [VOTE])
        assert abs((last - first + 1) - VOTE_W * PX * votes / most) <= 1.5, (votes, most, first, last)

    # The top three voted items of each section have a tinted background.
    assert len(runs([row[int(MARGIN * PX) + 1:int(MARGIN * PX) + 3] for row in rows], HIGHLIGHT)) == highlighted

    text = " ".join(jobs.pdf_text(pdf, tmp_path).split())
    for item in [i["text"] for s in report["sections"] for i in s["items"]] + [a["title"] for a in report["action_items"]]:
        assert item in text, item
    assert "5 votes" in text and "#1" in text
    assert "page 1 of" in text and "ben@example.test" in text
