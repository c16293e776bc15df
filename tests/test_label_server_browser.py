"""The labelling page in a real headless Chromium: the command-line server, both clips playing in
sync, three pairs labelled by keyboard, the label file checked line by line, and a restart that
resumes in the browser.

Needs Debian's `chromium` + `chromium-driver` (`.ci/run` installs them). Skipped where they are
missing, except under CI (env var CI set), where a missing browser fails the test.
"""
from __future__ import annotations

import json
import os

import pytest

from experiments import label_browser as lb

_CHROME, _DRIVER = lb.browser_paths()
if not (_CHROME and _DRIVER):
    if os.environ.get("CI"):
        raise RuntimeError("CI is set but chromium / chromedriver are missing (apt-get install chromium chromium-driver)")
    pytest.skip("chromium and chromium-driver are not installed", allow_module_level=True)

pytestmark = pytest.mark.slow  # ~50 s: two server starts, clip renders, a real browser

N_PAIRS = 4


def server_args(data_root: str, workdir: str, *extra: str) -> list[str]:
    return ["--config", "configs/label_server.py:tiny", f"--config.data_dir={data_root}", "--config.port=0",
            f"--config.n_pairs={N_PAIRS}", "--config.clip.size=64", "--config.clip.views=('front','side')",
            f"--workdir={workdir}", *extra]


@pytest.fixture()
def driver():
    d = lb.chrome()
    yield d
    d.quit()


def test_label_three_pairs_by_keyboard_then_resume(tiny_data_root, tiny_dataset_dir, tmp_path, driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from configs.label_server import get_config
    from experiments import label_server

    del tiny_dataset_dir  # built into tiny_data_root
    workdir = str(tmp_path / "run")
    server = lb.ServerProcess(server_args(tiny_data_root, workdir))
    try:
        driver.get(server.urls["me"])
        item = lb.wait_item(driver, None)
        lb.wait_both_playing(driver)
        body = driver.find_element(By.TAG_NAME, "body")
        # Frame stepping pauses both clips on the same frame; the camera switch keeps that frame.
        body.send_keys(".")
        lb.wait_for(lambda: all(p["paused"] for p in lb.playback(driver)), 10, "pause")
        times = [p["t"] for p in lb.playback(driver)]
        assert abs(times[0] - times[1]) < 1e-6
        body.send_keys("c")
        lb.wait_for(lambda: "side" in driver.find_element(By.ID, "view").get_attribute("value"), 10, "camera")
        body.send_keys(" ")
        lb.wait_both_playing(driver)
        shown = []
        for key in (Keys.ARROW_LEFT, Keys.ARROW_RIGHT, "s"):
            shown.append(item)
            body.send_keys(key)
            item = lb.wait_item(driver, item)
            lb.wait_both_playing(driver)
        progress = driver.find_element(By.ID, "progress").text
    finally:
        server.stop()
    assert progress.startswith("3 / ")

    with open(os.path.join(workdir, "labels.jsonl"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    header, rows = json.loads(lines[0]), [json.loads(x) for x in lines[1:]]
    assert header["format"] == "rlhf_jax.label_set/2" and list(header["annotators"]) == ["me"]
    assert [r["label"] for r in rows] == [1.0, 0.0, 0.5]
    # Each row is the pair the page showed, in queue order, left = side a.
    config = get_config("tiny")
    config.data_dir, config.n_pairs = tiny_data_root, N_PAIRS
    config.clip.size, config.clip.views = 64, ("front", "side")
    src, items = label_server.load_queue(config)
    assert [it.item_id for it in items[:3]] == shown
    seg = src.segments
    for r, it in zip(rows, items):
        assert (r["episode_id_a"], r["start_a"]) == (seg.episode_ids[seg.episode_index[it.row_a]], seg.start[it.row_a])
        assert (r["episode_id_b"], r["start_b"]) == (seg.episode_ids[seg.episode_index[it.row_b]], seg.start[it.row_b])
        assert r["annotator_id"] == "me" and r["confidence"] == 1.0 and r["gold"] == it.gold
        assert r["interface_version"] == label_server.INTERFACE_VERSION and 0 < r["seconds"] < 600

    # Restart: the page continues at the fourth pair and the file keeps its three rows.
    server = lb.ServerProcess(server_args(tiny_data_root, workdir, "--resume"))
    try:
        driver.get(server.urls["me"])
        assert lb.wait_item(driver, None) == items[3].item_id
        assert driver.find_element(By.ID, "progress").text.startswith("3 / ")
    finally:
        server.stop()
    with open(os.path.join(workdir, "labels.jsonl"), encoding="utf-8") as f:
        assert f.read().splitlines() == lines
