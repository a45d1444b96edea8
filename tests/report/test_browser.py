"""A real browser renders a report: every figure is present and non-blank, and the summary
numbers are in the page text. Needs Debian's ``chromium`` (``.ci/run`` installs it and sets
GDLENS_REQUIRE_BROWSER=1, which turns a missing browser into a failure instead of a skip)."""

import html
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from gdlens.report.html import format_value, write_report

CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    CHROMIUM = shutil.which("chromium") or CHROMIUM

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not os.environ.get("GDLENS_REQUIRE_BROWSER"),
    reason="chromium is not installed (set GDLENS_REQUIRE_BROWSER=1 to make this a failure)",
)

WIDTH = 1200

# Injected only into a copy of the report (the report itself has no scripts): after load,
# write the page height and each figure's box and decoded size into the DOM.
LAYOUT_SCRIPT = """<script>
window.addEventListener('load', function () {
  var figs = Array.from(document.querySelectorAll('img.figure')).map(function (img) {
    var r = img.getBoundingClientRect();
    return {id: img.id, x: r.left + window.scrollX, y: r.top + window.scrollY, w: r.width, h: r.height,
            nw: img.naturalWidth, complete: img.complete};
  });
  var pre = document.createElement('pre');
  pre.id = 'layout';
  pre.textContent = JSON.stringify({height: document.documentElement.scrollHeight, figures: figs});
  document.body.appendChild(pre);
});
</script>"""


def chromium(tmp_path, *args, timeout=180):
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--hide-scrollbars", "--force-device-scale-factor=1", f"--user-data-dir={profile}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.parametrize("label", ["recurrent", "mlp"])
def test_browser_renders_report(every_probe_runs, tmp_path, label):
    """The report of the every-probe runs (tests/report/conftest.py) in a real browser."""
    import matplotlib.image as mpimg

    from gdlens.report.panels import section_title

    run = every_probe_runs[1][label]
    report = write_report(run, tmp_path / "report.html")
    text = report.read_text()
    ids = re.findall(r"<img id='(fig-[^']+)'", text)
    assert len(ids) >= 4

    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("</body>", LAYOUT_SCRIPT + "</body>"))
    dom = chromium(tmp_path, "--virtual-time-budget=10000", f"--window-size={WIDTH},1000", "--dump-dom",
                   probe.as_uri())
    layout = json.loads(html.unescape(re.search(r"<pre id=\"layout\">(.*?)</pre>", dom, re.S).group(1)))
    boxes = {f["id"]: f for f in layout["figures"]}
    assert sorted(boxes) == sorted(ids)
    for f in boxes.values():
        assert f["complete"] and f["nw"] > 100 and f["w"] > 100 and f["h"] > 100, f

    # Screenshot the report itself, tall enough to hold the whole page.
    height = int(layout["height"]) + 20
    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--window-size={WIDTH},{height}", f"--screenshot={shot}", report.as_uri())
    img = mpimg.imread(shot)[..., :3]
    assert img.shape[1] == WIDTH and img.shape[0] >= height - 5
    for fid, f in boxes.items():
        x0, y0 = int(f["x"]) + 2, int(f["y"]) + 2
        crop = img[y0:y0 + int(f["h"]) - 4, x0:x0 + int(f["w"]) - 4]
        assert crop.size, fid
        ink = np.mean(crop.min(axis=-1) < 0.9)
        assert ink > 0.02 and crop.std() > 0.05, (fid, ink, crop.std())
    # the page outside the figures is mostly background
    assert np.mean(img.min(axis=-1) > 0.95) > 0.3

    # The summary numbers are in the rendered page text.
    page = html.unescape(re.sub(r"<[^>]+>", " ", chromium(tmp_path, "--dump-dom", report.as_uri())))
    for key, value in run.summary.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            assert format_value(value) in page, key
    assert "final_train_loss" in page
    for name, decl in run.summary["probes"].items():
        assert section_title(name, decl) in page, name
