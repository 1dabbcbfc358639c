"""The daily export page of a real forecast (issue 15 charts: GEX by expiry, strike x expiry heatmap, vanna by
strike, key-level history) rendered in headless Chromium: every chart image is there, loads and decodes
(naturalWidth/naturalHeight as the browser reports them), its alt text and PNG text chunks name its axes and the
levels it marks, and a screenshot of the page is drawn."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pipelines.publishing.chart_text import png_words
from tests.data_paths import TARDIS

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="chromium is not on PATH (CI installs the Debian package)"
)
DAY = "2026-07-31"
DEPTH_CHARTS = {
    "gex_by_expiry": ["x: expiry (08:00 UTC)", "y: dealer GEX (USD millions per 1 % move)"],
    "gex_heatmap": ["x: expiry (08:00 UTC)", "y: strike (USD; one row per listed strike)", "marked: spot "],
    "vanna_by_strike": ["x: strike (USD)", "y: dealer vanna (", "marked: spot "],
    "history": [
        "x: snapshot time (UTC)",
        "y: total GEX (USD M per 1 %)",
        "marked: spot, zero gamma, call wall, put wall",
    ],
}
# After the page has loaded, write every image's state into the DOM, which --dump-dom then prints.
PROBE = """<script>
window.addEventListener("load", () => {
  const rows = [...document.images].map(i => ({src: i.getAttribute("src"), alt: i.alt, complete: i.complete,
    width: i.naturalWidth, height: i.naturalHeight}));
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(rows);
  document.body.appendChild(out);
});
</script>"""
CHROMIUM = [
    "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


class _Probe(HTMLParser):
    def __init__(self):
        super().__init__()
        self.inside, self.text = False, ""

    def handle_starttag(self, tag, attrs):
        self.inside = self.inside or (tag == "pre" and ("id", "probe") in attrs)

    def handle_endtag(self, tag):
        if tag == "pre":
            self.inside = False

    def handle_data(self, data):
        if self.inside:
            self.text += data


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    """index.html of the 2026-07-31 forecast over two backfilled, computed days of the real Tardis history."""
    from pipelines.cli.app import main

    data_dir = tmp_path_factory.mktemp("chromium") / "data"
    backfill = ["backfill", "--data-dir", str(data_dir), "--tardis", str(TARDIS), "--each-timestamp"]
    assert main([*backfill, "--since", "2026-07-30", "--until", DAY]) == 0
    assert main(["forecast", "--data-dir", str(data_dir), "--date", DAY]) == 0
    return data_dir / "exports" / "flow_forecast" / f"date={DAY}" / "index.html"


def _chromium(tmp_path: Path, *args: str) -> str:
    cmd = [*CHROMIUM, f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout


def test_every_chart_of_the_page_loads_and_decodes_in_chromium(page, tmp_path):
    probed = tmp_path / "site"
    shutil.copytree(page.parent, probed)
    html = (probed / "index.html").read_text()
    (probed / "index.html").write_text(html.replace("</body>", PROBE + "</body>"))
    dom = _chromium(tmp_path, "--allow-file-access-from-files", "--virtual-time-budget=10000", "--dump-dom",
                    (probed / "index.html").as_uri())  # fmt: skip
    parser = _Probe()
    parser.feed(dom)
    images = {row["src"]: row for row in json.loads(parser.text)}
    for currency in ("BTC", "ETH"):
        for kind in (*DEPTH_CHARTS, "flow_1h", "flow_24h", "flow_next_expiry", "gex"):
            row = images.pop(f"{currency}_{kind}.png")
            assert row["complete"] and row["width"] > 600 and row["height"] > 300, row  # decoded by the browser
            assert row["alt"].startswith(currency) or row["alt"].startswith("t0 "), row  # a title, not a file name
    assert images == {}  # nothing else, nothing broken


def test_the_depth_charts_name_their_axes_and_marked_levels(page):
    for currency in ("BTC", "ETH"):
        for kind, words in DEPTH_CHARTS.items():
            text = png_words(page.parent / f"{currency}_{kind}.png")
            assert text["Title"].startswith(f"{currency} naive"), text
            for word in words:
                assert word in text["Description"], (kind, word, text["Description"])
        history = png_words(page.parent / f"{currency}_history.png")["Title"]
        assert "spot" in history and "zero gamma" in history and "2026-07-30 to 2026-07-31" in history


def test_the_page_is_drawn_in_chromium(page, tmp_path):
    import numpy as np
    from matplotlib import image

    shot = tmp_path / "page.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,9000", "--virtual-time-budget=10000",
              page.as_uri())  # fmt: skip
    pixels = image.imread(shot)
    assert pixels.shape[:2] == (9000, 1400)
    rows = (pixels[..., :3].std(axis=2) > 0.05).any(axis=1)  # rows with coloured (not grey/white) pixels
    assert rows.sum() > 3000  # chart after chart down the page, not text on white
    assert len(np.unique((pixels[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 500
