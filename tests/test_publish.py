"""experiments.publish: a committed results folder takes exactly its own files from a run."""
import os

from experiments import publish


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def test_copies_the_folders_own_files_and_nothing_else(tmp_path):
    run, res = str(tmp_path / "run"), str(tmp_path / "res")
    for rel in ("results.csv", "fit.json", "sub/metrics.csv", "checkpoints/ckpt"):
        _write(os.path.join(run, rel), "new " + rel)
    for rel in ("results.csv", "fit.json", "sub/metrics.csv"):
        _write(os.path.join(res, rel), "old " + rel)
    _write(os.path.join(res, "README.md"), "how this was made")
    assert publish.main(["prog", run, res]) == 0
    assert publish.committed_files(res) == ["fit.json", "results.csv", "sub/metrics.csv"]
    for rel in ("results.csv", "fit.json", "sub/metrics.csv"):
        assert open(os.path.join(res, rel), encoding="utf-8").read() == "new " + rel
    assert open(os.path.join(res, "README.md"), encoding="utf-8").read() == "how this was made"
    assert not os.path.exists(os.path.join(res, "checkpoints"))


def test_a_missing_file_is_refused_before_anything_is_copied(tmp_path, capsys):
    run, res = str(tmp_path / "run"), str(tmp_path / "res")
    _write(os.path.join(run, "results.csv"), "new")
    _write(os.path.join(res, "results.csv"), "old")
    _write(os.path.join(res, "fit.json"), "old")
    assert publish.main(["prog", run, res]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fit.json" in err[0] and "nothing was copied" in err[0]
    assert open(os.path.join(res, "results.csv"), encoding="utf-8").read() == "old"


def test_a_new_folder_names_its_files(tmp_path):
    run, res = str(tmp_path / "run"), str(tmp_path / "res")
    _write(os.path.join(run, "a.csv"), "a")
    _write(os.path.join(run, "b.json"), "b")
    os.makedirs(res)
    assert publish.main(["prog", run, res]) == 2
    assert publish.main(["prog", run, res, "--files", "a.csv"]) == 0
    assert publish.committed_files(res) == ["a.csv"]


def test_files_the_folder_makes_itself_are_kept(tmp_path):
    run, res = str(tmp_path / "run"), str(tmp_path / "res")
    _write(os.path.join(run, "results.csv"), "new")
    _write(os.path.join(res, "results.csv"), "old")
    _write(os.path.join(res, "report.json"), "made from the folder")
    assert publish.main(["prog", run, res]) == 2
    assert publish.main(["prog", run, res, "--keep", "report.json"]) == 0
    assert open(os.path.join(res, "report.json"), encoding="utf-8").read() == "made from the folder"
    assert open(os.path.join(res, "results.csv"), encoding="utf-8").read() == "new"
