"""Generated markdown blocks: written between their markers, nothing else on the page touched."""
import pytest

from experiments.doc_blocks import markers, read_block, write_block


def test_write_then_read_the_block_and_keep_the_rest(tmp_path):
    start, end = markers("table", "results/x")
    page = tmp_path / "page.md"
    page.write_text(f"# Title\n\nbefore\n{start}\nold\n{end}\nafter\n", encoding="utf-8")
    write_block(str(page), "table", "results/x", "| a |\n|---|\n| 1 |\n")
    text = page.read_text(encoding="utf-8")
    assert read_block(text, "table", "results/x") == "| a |\n|---|\n| 1 |"
    assert text.startswith("# Title\n\nbefore\n") and text.endswith(f"{end}\nafter\n") and "old" not in text


def test_a_page_without_the_block_is_refused_and_left_alone(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("no markers here\n", encoding="utf-8")
    with pytest.raises(KeyError, match="table:start results/y"):
        write_block(str(page), "table", "results/y", "x")
    assert page.read_text(encoding="utf-8") == "no markers here\n"


def test_render_main_writes_the_block_from_the_results_file(tmp_path, capsys):
    import json

    from experiments.doc_blocks import render_main

    results = tmp_path / "res"
    results.mkdir()
    (results / "summary.json").write_text(json.dumps({"x": 3}), encoding="utf-8")
    start, end = markers("t", str(results))
    page = tmp_path / "page.md"
    page.write_text(f"{start}\n{end}\n", encoding="utf-8")
    assert render_main(["prog", str(results), "--docs", str(page)], prog="m", results_file="summary.json",
                       default_page="unused.md", name="t", render=lambda r, d: f"x is {r['x']} from {d}") == 0
    assert read_block(page.read_text(encoding="utf-8"), "t", str(results)) == f"x is 3 from {results}"
    assert "wrote the" in capsys.readouterr().out
