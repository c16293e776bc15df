"""Generated blocks of the markdown pages: the text between ``<!-- NAME:start SOURCE -->`` and
``<!-- NAME:end SOURCE -->``, where SOURCE names the committed results the block is made from.
A report script writes its block; its test renders the same block from the committed results and
compares it with the page."""
from __future__ import annotations

import argparse
import json
import os

from rlhf_jax.checkpoint import atomic_write_text, from_strict_json


def markers(name: str, source: str) -> tuple[str, str]:
    """The start and end markers of block ``name`` made from ``source``."""
    return f"<!-- {name}:start {source} -->", f"<!-- {name}:end {source} -->"


def read_block(text: str, name: str, source: str) -> str:
    """The block's body in ``text`` (between its markers, without the newlines next to them)."""
    start, end = markers(name, source)
    if start not in text or end not in text:
        raise KeyError(f"no block {start} ... {end}")
    return text[text.index(start) + len(start):text.index(end)].strip("\n")


def replace_block(text: str, name: str, source: str, body: str) -> str:
    """``text`` with the block's body replaced (KeyError for a page without the block)."""
    read_block(text, name, source)  # refuses a page without the block
    start, end = markers(name, source)
    head, tail = text[:text.index(start) + len(start)], text[text.index(end):]
    return head + "\n" + body.strip("\n") + "\n" + tail


def write_block(path: str, name: str, source: str, body: str) -> None:
    """Replaces the block's body in the page at ``path`` (atomically)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    atomic_write_text(path, replace_block(text, name, source, body))


def render_main(argv: list[str], *, prog: str, results_file: str, default_page: str, name: str, render,
                load=None) -> int:
    """The command line of a report script that renders one block from a committed results folder:
    ``python -m <prog> RESULTS_DIR [--docs PAGE]`` reads RESULTS_DIR/``results_file`` with ``load``
    (an open text file -> results; by default JSON with its non-finite numbers as NaN, as
    ``rlhf_jax.checkpoint.read_json`` reads it) and writes ``render(results, RESULTS_DIR)``
    into the page's block ``name``."""
    parser = argparse.ArgumentParser(prog=f"python -m {prog}")
    parser.add_argument("results_dir")
    parser.add_argument("--docs", default=default_page)
    args = parser.parse_args(argv[1:])
    with open(os.path.join(args.results_dir, results_file), encoding="utf-8", newline="") as f:
        results = load(f) if load else from_strict_json(json.load(f))
    write_block(args.docs, name, args.results_dir, render(results, args.results_dir))
    print(f"wrote the {args.results_dir} block of {args.docs}")
    return 0
