"""The shivyad dashboard in a real headless Chromium (Selenium + Debian's chromedriver).

Starts two daemons with --visualize on the first, loads the page, waits until it shows
the peer count, at least one settled-flow edge, the weight of every backend and the
information age plotted over time, checks the browser console is free
of errors, and saves a screenshot as a test artifact.
"""
import os
import socket
import subprocess
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.support.ui import WebDriverWait

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("SHIVYA_TARGET_DIR") or os.path.join(ROOT, "target")
BIN = os.path.join(TARGET, "release", "shivyad")
ARTIFACTS = os.path.join(TARGET, "artifacts")


def free_port(kind):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    os.makedirs(ARTIFACTS, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="shivyad-dash-")
    u1, u2, ws = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    common = ["--vertices", "4", "--interval-ms", "200", "--log-level", "warn"]
    d1 = subprocess.Popen([BIN, "--port", str(u1), "--vertex", "0", "--load", "9", "--visualize",
                           "--ws-port", str(ws), "--socket", os.path.join(tmp, "1.sock")] + common)
    time.sleep(0.2)
    d2 = subprocess.Popen([BIN, "--port", str(u2), "--vertex", "2", "--load", "1", "--peer",
                           f"127.0.0.1:{u1}", "--socket", os.path.join(tmp, "2.sock")] + common)
    driver = None
    try:
        opts = Options()
        opts.binary_location = "/usr/bin/chromium"
        for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,820"]:
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        deadline = time.time() + 10
        while True:
            try:
                driver.get(f"http://127.0.0.1:{ws}/")
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        # The page redraws its SVG every feed tick: an element found a moment ago may be
        # replaced before its attribute is read; the wait then simply looks again.
        wait = WebDriverWait(driver, 15, ignored_exceptions=(StaleElementReferenceException,))
        wait.until(lambda d: int(d.find_element(By.ID, "peer-count").text or "0") >= 1)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "line.route")) >= 1)
        # Weights and information age plotted over time: one line per backend, each with
        # at least two samples, and an age line.
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "polyline.weight-line")) == 4
                   and all(len(e.get_attribute("points").split()) >= 2
                           for e in d.find_elements(By.CSS_SELECTOR, "polyline.weight-line")))
        wait.until(lambda d: len(d.find_element(By.ID, "age-line").get_attribute("points").split()) >= 2)
        age_now = wait.until(lambda d: d.find_element(By.ID, "age-now").text)
        assert age_now.isdigit(), age_now
        peers = int(wait.until(lambda d: d.find_element(By.ID, "peer-count").text))
        routes = len(driver.find_elements(By.CSS_SELECTOR, "line.route"))
        vertices = len(driver.find_elements(By.CSS_SELECTOR, "circle.vertex"))
        shot = os.path.join(ARTIFACTS, "dashboard.png")
        driver.save_screenshot(shot)
        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        print(f"dashboard: peers={peers} routes={routes} vertices={vertices} screenshot={shot}")
        assert vertices == 4, vertices
        assert not errors, f"console errors: {errors}"
        assert os.path.getsize(shot) > 1000
    finally:
        if driver is not None:
            driver.quit()
        for d in (d1, d2):
            d.terminate()
            d.wait(timeout=10)
    print("dashboard test: ok")


if __name__ == "__main__":
    sys.exit(main())
