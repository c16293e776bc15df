"""The README screenshot of the labelling page, taken in the same headless Chromium as the tests.

  python -m experiments.label_screenshot --out docs/label_server.png

Starts `experiments.label_server` (configs/label_server.py:tiny, gold accuracy shown) in a
temporary workdir, answers one pair so the progress line has something to show, lets both clips
play, steps to a frame and writes the PNG. Needs chromium + chromium-driver.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

from experiments import label_browser as lb


def take(out: str, data_dir: str = "") -> str:
    from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top
    from selenium.webdriver.common.keys import Keys  # pylint: disable=g-import-not-at-top
    with tempfile.TemporaryDirectory() as tmp:
        args = ["--config", "configs/label_server.py:tiny", "--config.port=0", "--config.show_gold_accuracy=True",
                f"--workdir={os.path.join(tmp, 'run')}"] + ([f"--config.data_dir={data_dir}"] if data_dir else [])
        server = lb.ServerProcess(args)
        driver = lb.chrome(1000, 860)
        try:
            driver.get(server.urls["me"])
            body = driver.find_element(By.TAG_NAME, "body")
            item = lb.wait_item(driver, None)
            lb.wait_both_playing(driver)
            body.send_keys(Keys.ARROW_LEFT)
            lb.wait_item(driver, item)
            lb.wait_both_playing(driver)
            driver.find_element(By.CSS_SELECTOR, "#rubric button").click()  # one rubric answer chosen
            for key in ",....":  # pause, then step to a frame with the arms in motion
                body.send_keys(key)
            lb.wait_for(lambda: all(p["paused"] for p in lb.playback(driver)), 10, "pause")
            os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
            driver.save_screenshot(out)
        finally:
            driver.quit()
            server.stop()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/label_server.png")
    parser.add_argument("--data_dir", default="", help="dataset cache (default $RLHF_JAX_DATA_DIR)")
    args = parser.parse_args(argv)
    print(take(args.out, args.data_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
