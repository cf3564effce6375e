"""The HTML rollout report opens in a real browser, offline, and shows the progress chart.

Debian's chromium runs headless with the network cut off (every host name fails to resolve).
A machine without chromium fails this test: the report's promise is that it works in a browser.
"""

from __future__ import annotations

import re
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests import deckdata
from tests.browser import chromium

#: Series colours (reports.COLOURS, assigned to categories in name order: ESDH, Jobcenter).
ESDH = (0x1F, 0x77, 0xB4)
JOBCENTER = (0xD6, 0x27, 0x28)


def _browse(html: Path, tmp_path: Path, *mode: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={tmp_path / 'profile'}",
            *mode,
            html.as_uri(),
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and rows of RGB(A) pixels of an 8-bit, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and colour in (2, 6)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        line = bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, channels, rows


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The HTML rollout report of the deck's database as of 31 March 2021."""
    tmp = tmp_path_factory.mktemp("html")
    runner = CliRunner()
    path = deckdata.build(runner, tmp / "deck.db")
    out = tmp / "rollout.html"
    deckdata.invoke(
        runner,
        path,
        "report",
        "rollout",
        "--as-of",
        "2021-03-31",
        "--format",
        "html",
        "-o",
        str(out),
    )
    return out


def test_rollout_html_chart_is_in_the_browser_dom(report_html: Path, tmp_path: Path) -> None:
    """Chromium, offline, parses the file into a DOM holding the chart's SVG, lines and targets."""
    dom = _browse(report_html, tmp_path, "--dump-dom").stdout.decode("utf-8")
    assert '<svg id="rollout-chart"' in dom
    series = re.findall(
        r'<polyline class="series" data-category="([^"]+)"[^>]*points="([^"]+)"', dom
    )
    assert sorted(c for c, _ in series) == ["ESDH", "Jobcenter"]
    assert all(len(points.split()) > 10 for _, points in series)  # week by week since January
    targets = re.findall(r'<path class="target" data-category="([^"]+)"', dom)
    assert sorted(targets) == ["ESDH"] * 3 + ["Jobcenter"] * 3  # Q2 30, Q3 70, Q4 all
    assert "Formpipe – Acadre" in dom and ">119<" in dom


def test_rollout_html_chart_is_drawn_on_screen(report_html: Path, tmp_path: Path) -> None:
    """A screenshot shows both series' line colours between January and the as-of line."""
    # That strip of the plot (screen x 85-205: the body margin plus the SVG's x 48-185) holds
    # nothing else in those colours: the target diamonds, value labels and legend lie right of
    # it (without the lines the strip has none of either colour).
    shot = tmp_path / "shot.png"
    _browse(report_html, tmp_path, "--window-size=1000,700", f"--screenshot={shot}")
    width, channels, rows = _png_pixels(shot.read_bytes())
    assert width == 1000
    counts = {ESDH: 0, JOBCENTER: 0}
    for row in rows[100:420]:
        for x in range(85, 205):
            pixel = tuple(row[x * channels : x * channels + 3])
            if pixel in counts:
                counts[pixel] += 1  # type: ignore[index]
    assert counts[ESDH] > 40 and counts[JOBCENTER] > 40, counts
