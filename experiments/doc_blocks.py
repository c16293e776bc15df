"""Generated blocks of the markdown pages: the text between ``<!-- NAME:start SOURCE -->`` and
``<!-- NAME:end SOURCE -->``, where SOURCE names the committed results the block is made from.
A report script writes its block; its test renders the same block from the committed results and
compares it with the page."""
from __future__ import annotations

from rlhf_jax.checkpoint import atomic_write_text


def markers(name: str, source: str) -> tuple[str, str]:
    """The start and end markers of block ``name`` made from ``source``."""
    return f"<!-- {name}:start {source} -->", f"<!-- {name}:end {source} -->"


def read_block(text: str, name: str, source: str) -> str:
    """The block's body in ``text`` (between its markers, without the newlines next to them)."""
    start, end = markers(name, source)
    if start not in text or end not in text:
        raise KeyError(f"no block {start} ... {end}")
    return text[text.index(start) + len(start):text.index(end)].strip("\n")


def write_block(path: str, name: str, source: str, body: str) -> None:
    """Replaces the block's body in the page at ``path`` (atomically)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    read_block(text, name, source)  # refuses a page without the block
    start, end = markers(name, source)
    head, tail = text[:text.index(start) + len(start)], text[text.index(end):]
    atomic_write_text(path, head + "\n" + body.strip("\n") + "\n" + tail)
