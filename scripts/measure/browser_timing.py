"""Interleaved timing of the HTML report's browser check: the old `chromium --dump-dom` probe against the selenium
check with a full-page screenshot (tests/report/test_report.py), three pairs on one built report.
Run from the repository root: python scripts/measure/browser_timing.py (needs chromium and chromedriver)."""
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from brts.report import build_report
from brts.spec import load_spec
from tests.report.fake_runs import write_experiment
from tests.report.test_report import CHROMIUM_FLAGS, SHIFT

root = Path(tempfile.mkdtemp())
write_experiment(root / "store", load_spec("ablation-grid"), SHIFT)
build_report("ablation-grid", root / "store", root / "out")
out = root / "out"

def old():
    probe = out / "probe.html"
    probe.write_text((out / "index.html").read_text().replace("</body>", (
        "<script>window.addEventListener('load', () => { document.title = 'IMAGES ' + "
        "Array.from(document.images).map(i => (i.complete && i.naturalWidth > 0) ? 'ok' : 'broken').join(' '); "
        "});</script></body>")))
    done = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tempfile.mkdtemp()}",
                           "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    assert re.search(r"<title>IMAGES ([^<]*)</title>", done.stdout)

def new():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    o = webdriver.ChromeOptions()
    o.binary_location = shutil.which("chromium")
    for f in (*CHROMIUM_FLAGS, f"--user-data-dir={tempfile.mkdtemp()}"):
        o.add_argument(f)
    b = webdriver.Chrome(options=o, service=Service(executable_path=shutil.which("chromedriver")))
    try:
        b.get((out / "index.html").as_uri())
        h = b.execute_script("return document.documentElement.scrollHeight")
        b.set_window_size(1280, min(int(h) + 200, 16000))
        b.execute_script("return Array.from(document.images).map(i => i.naturalWidth)")
        b.get_screenshot_as_png()
    finally:
        b.quit()

times = {"old": [], "new": []}
for _ in range(3):
    for name, fn in (("old", old), ("new", new)):
        t = time.perf_counter()
        fn()
        times[name].append(time.perf_counter() - t)
print({k: [round(x, 2) for x in v] for k, v in times.items()})
print("ratio new/old per pair:", [round(n / o, 2) for n, o in zip(times["new"], times["old"], strict=True)])
