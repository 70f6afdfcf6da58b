"""report.html opens in a real browser: headless Chromium renders it, the plots decode to real
images, the verdict is on screen, and the screenshot is kept (tmp dir, and $PRIVAUDIT_ARTIFACTS
when set)."""

import html
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from matplotlib import image as mpimg
from privaudit.core import plots
from privaudit.core.report import ReportSection, write_report

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs headless Chromium (Debian: apt-get install -y chromium)"
)
WINDOW = (1200, 1800)

# Appended to a copy of the page: after load, what the browser made of each image and the verdict.
PROBE = """<script>addEventListener("load", () => {
  const v = document.getElementById("verdict"), box = v.getBoundingClientRect(), s = getComputedStyle(v);
  const out = {
    images: [...document.images].map(i => ({alt: i.alt, w: i.naturalWidth, h: i.naturalHeight,
                                             shown: i.getBoundingClientRect().width})),
    verdict: {text: v.innerText, top: box.top, height: box.height, width: box.width,
              visibility: s.visibility, display: s.display},
  };
  const t = document.getElementById("two-sided-numbers");
  if (t) out.two_sided = {rows: t.rows.length, text: t.innerText,
                          width: t.getBoundingClientRect().width, display: getComputedStyle(t).display};
  const pre = document.createElement("pre"); pre.id = "probe";
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});</script>"""


def _chromium(tmp_path, *args: str) -> str:
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--virtual-time-budget=5000", *args,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("browser")
    rng = np.random.default_rng(0)
    member = rng.integers(0, 2, 400)
    scores = pd.DataFrame(
        {
            "member": member,
            "baseline_pred": rng.normal(0.3 * member, 1),
            "mia_target_pred": rng.normal(2.0 * member, 1),
        }
    )
    extra_png = plots.roc_png(
        {"extra": (np.array([0, 0.5, 1]), np.array([0, 0.8, 1]))}, log_scale=False
    )
    section = ReportSection("A modality's section", "<p>more</p>", (("extra.png", extra_png),))
    out = tmp_path / "run"
    report = write_report(scores, out, member_prior=0.5, sections=[section])
    page = (out / "report.html").read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    dom = _chromium(tmp_path, "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, "the probe did not run: the page did not finish loading"
    screenshot = tmp_path / "report.png"
    _chromium(tmp_path, f"--screenshot={screenshot}", (out / "report.html").as_uri())
    artifacts = os.environ.get("PRIVAUDIT_ARTIFACTS")
    if artifacts:
        os.makedirs(artifacts, exist_ok=True)
        shutil.copy(screenshot, os.path.join(artifacts, "report-chromium.png"))
    return report, json.loads(html.unescape(found.group(1))), screenshot


def test_every_plot_decodes_and_is_shown(rendered):
    _, probe, _ = rendered
    alts = {i["alt"] for i in probe["images"]}
    assert {"roc.png", "roc_loglog.png", "eps_lb_recall.png", "precision_recall.png"} <= alts
    assert "extra.png" in alts
    for img in probe["images"]:
        assert img["w"] > 100 and img["h"] > 100 and img["shown"] > 100, img


def test_the_verdict_is_visible_at_the_top(rendered):
    report, probe, _ = rendered
    verdict = probe["verdict"]
    assert verdict["display"] != "none" and verdict["visibility"] == "visible"
    assert verdict["height"] > 20 and verdict["width"] > 300
    assert 0 <= verdict["top"] < WINDOW[1] / 2  # on the first screen, without scrolling
    assert report["verdict"]["text"][:40] in verdict["text"]


def test_the_screenshot_is_not_blank(rendered):
    _, _, screenshot = rendered
    pixels = mpimg.imread(screenshot)[..., :3]
    assert pixels.shape[:2] == (WINDOW[1], WINDOW[0])
    not_white = (pixels < 0.95).any(axis=-1).mean()
    colours = np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0).shape[0]
    assert not_white > 0.02 and colours > 50, (not_white, colours)


def test_the_two_sided_table_is_shown_with_a_row_per_column(rendered):
    report, probe, _ = rendered
    table = probe["two_sided"]
    assert table["display"] != "none" and table["width"] > 300
    assert table["rows"] == 1 + len(report["two_sided"]["columns"])  # the header and each column
    assert "mia_target_pred" in table["text"] and "non-member guesses" in table["text"]
