"""``audioemb serve`` end to end in headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by
selenium): the page loads, a search runs, and a result's audio element really plays (currentTime advances).

``.ci/run`` installs chromium (under CI the test fails rather than skips without it); set
``AUDIOEMB_SCREENSHOT=PATH`` to save a screenshot of the results page.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

webdriver = pytest.importorskip("selenium.webdriver")
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER) and not os.environ.get("CI"),
                                reason="Debian chromium and chromium-driver are not installed "
                                "(apt-get install -y chromium chromium-driver; .ci/run does)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, clip_paths):
    from audioemb.cluster_report import cluster_collection
    from audioemb.index import Index

    base = tmp_path_factory.mktemp("browser")
    root = base / "sounds"
    root.mkdir()
    for p in clip_paths:
        shutil.copy(p, root / p.name)
    Index.build(root, base / "idx", model="npc-s.debian")
    cluster_collection(base / "idx", base / "clusters", k=3)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "audioemb", "serve", str(base / "idx"), "--port", str(port),
                             "--clusters", str(base / "clusters"), "--token", "browser-test"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            req = urllib.request.Request(f"{url}/api/info", headers={"Authorization": "Bearer browser-test"})
            urllib.request.urlopen(req, timeout=1).read()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"audioemb serve exited: {proc.stdout.read()}")
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--autoplay-policy=no-user-gesture-required", "--window-size=1400,900", "--mute-audio"):
        opts.add_argument(arg)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


def _wait(fn, timeout: float = 30.0, what: str = ""):
    end = time.time() + timeout
    while time.time() < end:
        got = fn()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_search_in_the_page_and_play_a_result(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(f"{server}/?token=browser-test")
    _wait(lambda: "files" in browser.find_element(By.ID, "info").text, what="the index info")
    field = browser.find_element(By.ID, "file-input")
    field.send_keys("speech_hello_hedgewars.wav")
    browser.find_element(By.ID, "search-button").click()
    rows = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#results tbody tr.hit"), what="results")
    assert len(rows) == 8 and "speech_hello_hedgewars.wav" in rows[0].text
    assert "results for speech_hello_hedgewars.wav" in browser.find_element(By.ID, "status").text
    _wait(lambda: browser.execute_script(
        "return [...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth > 0)"),
        what="waveform thumbnails")
    audio = rows[1].find_element(By.TAG_NAME, "audio")
    browser.execute_script("arguments[0].play()", audio)
    t = _wait(lambda: browser.execute_script("return arguments[0].currentTime", audio) > 0.3, what="playback")
    assert t and browser.execute_script("return arguments[0].error", audio) is None
    shot = os.environ.get("AUDIOEMB_SCREENSHOT")
    if shot:
        browser.execute_script("arguments[0].pause()", audio)
        Path(shot).parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(shot)


def test_clusters_and_map_tabs(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(f"{server}/?token=browser-test")
    browser.find_element(By.CSS_SELECTOR, "nav button[data-tab=clusters]").click()
    cards = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#clusters .cluster"), what="clusters")
    assert len(cards) == 3 and all(c.find_elements(By.TAG_NAME, "audio") for c in cards)
    browser.find_element(By.CSS_SELECTOR, "nav button[data-tab=map]").click()
    canvas = _wait(lambda: browser.find_element(By.ID, "map"), what="map")
    xy = _wait(lambda: browser.execute_script("return window.audioembMapView && window.audioembMapView.point(0)"),
               what="the map drawn")
    box = canvas.rect
    from selenium.webdriver.common.action_chains import ActionChains

    scale = box["width"] / canvas.get_property("width")
    ActionChains(browser).move_to_element_with_offset(canvas, int(xy[0] * scale - box["width"] / 2) + 1,
                                                      int(xy[1] * scale - box["height"] / 2) + 1).click().perform()
    player = browser.find_element(By.ID, "map-player")
    _wait(lambda: browser.execute_script("return arguments[0].currentTime", player) > 0.2, what="map playback")
    assert browser.find_element(By.ID, "map-now").text
