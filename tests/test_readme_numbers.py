"""No measured number is typed into README.md by hand: every figure that a run or benchmark
measured sits in a generated block (checked against its files by the block's own test, and the
first-run block here), and every other number in the prose is either a setting read back from
the committed config it describes, or one of the fixed facts listed below with its reason.
A new hand-typed figure fails this test until it is generated or listed."""
import json
import os
import re

from experiments import readme_figures
from experiments.doc_blocks import read_block

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Numbers that are facts of definition, not measurements: (number, why it may be typed).
FIXED = {
    "2": "exit code 2; log 2 (closed forms); the 2 processes of the multi-process test",
    "0": "active learning's round 0, its first round",
    "1": "8 devices against 1, 1-device step",
    "8": "8 forced CPU devices in the multi-device tests",
    "95%": "the confidence level of every interval",
    "0.10.2": "the pinned JAX version (setup.py)",
    "0.11.2": "the GPU machine's own JAX version, read from the GPU JSONs in the table",
    "0.12.10": "the GPU machine's flax version",
    "13": "CUDA 13, the GPU machine's CUDA",
    "580": "NVIDIA driver series that CUDA 13 needs",
    "5": "the 5-minute budget of benchmarks.gpu_all (its default --budget_s 300)",
    "127.0.0.1": "the labelling server's bind address",
    "1971": "Fleiss (1971), the cited paper", "0.210": "Fleiss 1971's published kappa",
    "2011": "Krippendorff (2011), the cited paper", "0.743": "Krippendorff 2011's published alpha",
}


def _prose(text: str) -> str:
    """README without generated blocks, fenced code, inline code and link targets."""
    text = re.sub(r"<!-- ([\w-]+):start (\S+) -->.*?<!-- \1:end \2 -->", "", text, flags=re.S)
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`]*`", "", text)
    return re.sub(r"\]\([^)]*\)", "]", text)


def _numbers(text: str) -> list[str]:
    """Stand-alone numbers (not part of a name like UR5 or Gen3), with a trailing % kept."""
    return [m.group(0).rstrip(".,") for m in re.finditer(r"(?<![\w.\-/])\d[\d,.]*%?(?![\w])", text)]


def _readme() -> str:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def test_first_run_block_is_rendered_from_the_committed_files():
    assert read_block(_readme(), readme_figures.BLOCK, readme_figures.SOURCE) == readme_figures.first_run_line(ROOT)


def test_lerobot_io_block_is_rendered_from_the_committed_benchmark():
    assert (read_block(_readme(), readme_figures.LEROBOT_BLOCK, readme_figures.LEROBOT_IO)
            == readme_figures.lerobot_io_line(ROOT))


def test_every_number_in_the_readme_prose_is_generated_read_back_or_a_listed_fact():
    with open(os.path.join(ROOT, "results", "medium_9600", "config.json"), encoding="utf-8") as f:
        medium = json.load(f)
    # The headline paragraph describes the medium sweep's design: its numbers are read back.
    settings = {f"{min(medium['n_values']):,}", f"{max(medium['n_values']):,}", str(len(medium["seeds"])),
                str(medium["members"])}
    unexplained = sorted({n for n in _numbers(_prose(_readme())) if n not in FIXED and n not in settings})
    assert not unexplained, f"numbers typed into README.md by hand: {unexplained}"


def test_the_check_sees_a_hand_typed_figure():
    """The scanner finds a figure in prose and ignores names, code and generated blocks."""
    text = "It took 7.5 minutes on a UR5 and Gen3.\n```\nrun 99\n```\n`x 42`\n<!-- b:start s -->\n3.3\n<!-- b:end s -->"
    assert _numbers(_prose(text)) == ["7.5"]
