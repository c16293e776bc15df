"""Driving the labelling page in a real headless Chromium (Selenium): the browser test, the README
screenshot (`python -m experiments.label_screenshot`) and the benchmark share these helpers.

Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Headless playback
needs Chromium's autoplay flag: without a user gesture it would refuse to play the clips.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time

URL_LINE = re.compile(r"labelling page for (\S+): (http://\S+)")
CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--autoplay-policy=no-user-gesture-required", "--mute-audio")


def browser_paths() -> tuple[str | None, str | None]:
    """(chromium, chromedriver) executables, None where missing."""
    chrome = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    return chrome, shutil.which("chromedriver")


class ServerProcess:
    """`python -m experiments.label_server ...` in a subprocess; `urls` {annotator: page url}."""

    def __init__(self, args: list[str], timeout: float = 300.0, env: dict | None = None):
        self.proc = subprocess.Popen([sys.executable, "-m", "experiments.label_server", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=env, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self.output: list[str] = []
        self.urls: dict[str, str] = {}
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(timeout) or not self.urls:
            self.stop()
            raise RuntimeError("label server did not start:\n" + "".join(self.output[-30:]))

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line)
            m = URL_LINE.search(line)
            if m:
                self.urls[m.group(1)] = m.group(2)
                self._ready.set()
        self._ready.set()  # exited: wake the waiter

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def chrome(width: int = 1000, height: int = 900):
    """A headless Chromium WebDriver with autoplay allowed."""
    from selenium import webdriver  # pylint: disable=g-import-not-at-top
    from selenium.webdriver.chrome.service import Service  # pylint: disable=g-import-not-at-top
    binary, driver = browser_paths()
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for flag in CHROME_FLAGS + (f"--window-size={width},{height}",):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=opts)


PLAYBACK = """
const v = ['left', 'right'].map((id) => document.getElementById(id));
return v.map((x) => ({t: x.currentTime, paused: x.paused, ready: x.readyState, err: x.error && x.error.code,
                      w: x.videoWidth, src: x.currentSrc}));
"""


def playback(driver) -> list[dict]:
    return driver.execute_script(PLAYBACK)


def wait_for(predicate, timeout: float = 60.0, what: str = "condition", poll: float = 0.05):
    """predicate() until truthy; returns its value (TimeoutError naming `what`)."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(poll)


def wait_item(driver, previous: str | None, timeout: float = 120.0) -> str:
    """Waits until the page shows an item other than `previous`; returns its id."""
    return wait_for(lambda: (driver.execute_script("return document.body.dataset.itemId || ''")
                             not in ("", previous)) and driver.execute_script("return document.body.dataset.itemId"),
                    timeout, "the next item")


def wait_both_playing(driver, timeout: float = 60.0) -> list[dict]:
    """Waits until both clips have decoded frames and are playing past their start."""
    def ok():
        p = playback(driver)
        return p if all(x["ready"] >= 2 and not x["paused"] and x["t"] > 0 and x["w"] > 0 and not x["err"]
                        for x in p) else None
    return wait_for(ok, timeout, "both clips to play")
