"""The labelling page's speed: clip render + encode time per pair, page load time, browser-test time.

  python -m benchmarks.label_server [--out benchmarks/results/label_server.json] [--skip_test]

clip: both segments of a pair of the `tiny` dataset rendered with the JAX camera and encoded to
WebM/VP9, per view and for all three views, at the page's default size (192) and at 384, after
one warm-up pair (the compile of each (robot, view, size) is reported apart).
page: headless Chromium from navigation to both clips playing, against the command-line server
(first item: clips rendered on request; next item: clips prefetched while the first was shown).
browser_test: wall time of `pytest tests/test_label_server_browser.py` in a subprocess.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.common import machine_info, package_versions, use_compilation_cache, write_json
from experiments import label_browser as lb
from rlhf_jax.data.dataset import load_episodes
from rlhf_jax.labels import clips

EXTRA_PACKAGES = ("starlette", "uvicorn", "imageio-ffmpeg", "selenium", "httpx")


def clip_times(episodes, size: int, views, pairs: int = 6) -> dict:
    """Seconds per pair (two clips per view) for `views`, median over `pairs` pairs."""
    length = 8
    with tempfile.TemporaryDirectory() as tmp:
        cache = clips.ClipCache(tmp, fps=8.0)
        t0 = time.perf_counter()
        for view in views:  # warm-up: compiles every (robot, view, size) the pairs use
            for ep in (episodes[0], episodes[-1]):
                cache.clip({"warm": ep["episode_metadata"]["episode_id"], "view": view, "size": size},
                           lambda ep=ep, view=view: clips.sim_frames(ep, 0, length, view=view, size=size))
        compile_s = time.perf_counter() - t0
        per_pair = []
        for p in range(pairs):
            t = time.perf_counter()
            for view in views:
                for ep in (episodes[2 * p + 1], episodes[2 * p + 2]):
                    cache.clip({"ep": ep["episode_metadata"]["episode_id"], "view": view, "size": size},
                               lambda ep=ep, view=view: clips.sim_frames(ep, 4, length, view=view, size=size))
            per_pair.append(time.perf_counter() - t)
    return {"size": size, "views": list(views), "frames": length, "pairs": pairs,
            "median_s_per_pair": float(np.median(per_pair)), "max_s_per_pair": float(np.max(per_pair)),
            "warmup_with_compile_s": compile_s}


def page_times() -> dict:
    """Navigation -> both clips playing, first item (rendered on request) and second (prefetched)."""
    from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top
    from selenium.webdriver.common.keys import Keys  # pylint: disable=g-import-not-at-top
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        server = lb.ServerProcess(["--config", "configs/label_server.py:tiny", "--config.port=0",
                                   f"--workdir={tmp}/run"])
        start_s = time.perf_counter() - t
        driver = lb.chrome()
        try:
            t = time.perf_counter()
            driver.get(server.urls["me"])
            item = lb.wait_item(driver, None)
            lb.wait_both_playing(driver)
            first = time.perf_counter() - t
            dom = driver.execute_script("const n = performance.getEntriesByType('navigation')[0];"
                                        "return n.loadEventEnd - n.startTime;")
            t = time.perf_counter()
            driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_LEFT)
            lb.wait_item(driver, item)
            lb.wait_both_playing(driver)
            second = time.perf_counter() - t
            t = time.perf_counter()
            driver.refresh()
            lb.wait_item(driver, None)
            lb.wait_both_playing(driver)
            reload_s = time.perf_counter() - t
        finally:
            driver.quit()
            server.stop()
    return {"server_start_s": start_s, "first_item_to_playing_s": first, "dom_load_ms": dom,
            "next_item_to_playing_s": second, "reload_to_playing_s": reload_s}


def browser_test_time() -> dict:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_label_server_browser.py"], capture_output=True, text=True, check=False)
    return {"wall_s": time.perf_counter() - t, "returncode": proc.returncode,
            "summary": proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""}


def versions() -> dict:
    out = package_versions(EXTRA_PACKAGES)
    chrome, driver = lb.browser_paths()
    for key, exe in (("chromium", chrome), ("chromedriver", driver)):
        out[key] = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip() if exe else None
    import imageio_ffmpeg  # pylint: disable=g-import-not-at-top
    out["ffmpeg"] = imageio_ffmpeg.get_ffmpeg_version()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/label_server.json")
    parser.add_argument("--skip_test", action="store_true", help="do not time the browser test")
    args = parser.parse_args(argv)
    use_compilation_cache()
    episodes = load_episodes("tiny")
    result = {"machine": machine_info(), "versions": versions(),
              "clip": [clip_times(episodes, 192, ("front",)), clip_times(episodes, 192, ("front", "side", "top")),
                       clip_times(episodes, 384, ("front",))],
              "page": page_times()}
    if not args.skip_test:
        result["browser_test"] = browser_test_time()
    write_json(args.out, result)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
