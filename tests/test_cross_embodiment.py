"""Cross-embodiment experiment: the tiny variant end to end, its outputs, and the notebook
executed against them (nbclient, RESULTS_DIR)."""
from __future__ import annotations

import csv
import json
import os

import pytest

from configs import cross_embodiment as xe_config
from experiments import cli
from experiments.cross_embodiment import run_transfer
from rlhf_jax.data.errors import ConfigError

from tests.subprocess_utils import ROOT


@pytest.fixture(scope="module")
def tiny_run(tiny_data_root, tiny_dataset_dir, tmp_path_factory):
    """The tiny variant run into a temp workdir (uses the session's tiny dataset)."""
    del tiny_dataset_dir  # built by the session fixture into tiny_data_root
    workdir = str(tmp_path_factory.mktemp("xemb") / "run")
    config = xe_config.get_config("tiny")
    config.data_dir = tiny_data_root
    table = run_transfer(config, workdir, log=lambda *_: None)
    return workdir, table, config


@pytest.mark.slow
def test_outputs(tiny_run):
    workdir, table, config = tiny_run
    for name in ("results.csv", "claims.md", "claims.json", "accuracy_vs_n_target.png",
                 "config.json", "run_info.json"):
        assert os.path.isfile(os.path.join(workdir, name)), name
    with open(os.path.join(workdir, "results.csv")) as f:
        rows = list(csv.DictReader(f))
    conds = {r["condition"] for r in rows}
    assert conds == {"source_in_domain", "zero_shot", "finetune", "scratch"}
    assert {r["feature_kind"] for r in rows} == set(config.feature_kinds)
    n_ft = [r for r in rows if r["condition"] == "finetune"]
    assert len(n_ft) == len(config.feature_kinds) * len(config.n_target) * len(config.seeds)
    assert all(0.0 <= float(r["accuracy"]) <= 1.0 for r in rows)
    assert len(table) == 3 * len(config.feature_kinds)
    assert json.load(open(os.path.join(workdir, "claims.json"))) == table


@pytest.mark.slow
def test_refuses_nonempty_workdir(tiny_run):
    workdir, _, config = tiny_run
    with pytest.raises(ConfigError, match="not empty"):
        run_transfer(config, workdir)


def test_config_variants_and_overrides():
    assert xe_config.get_config("quick").n_target == (100, 250, 500, 1000, 2000, 10000)
    spec = "--config=configs/cross_embodiment.py:quick"
    parsed = cli.parse(["prog", spec, "--config.seeds=(0,1,2)", "--workdir=x"])
    assert parsed.config.seeds == (0, 1, 2) and parsed.config_file == "configs/cross_embodiment.py"
    with pytest.raises(ValueError, match="variant"):
        xe_config.get_config("huge")
    with pytest.raises(ConfigError, match="no such field"):
        cli.parse(["prog", spec, "--config.nope=1", "--workdir=x"])


@pytest.mark.slow
def test_notebook_executes_on_results(tiny_run, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    workdir, _, _ = tiny_run
    monkeypatch.setenv("RESULTS_DIR", workdir)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(os.path.join(ROOT, "notebooks", "cross_embodiment.ipynb"), as_version=4)
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.output_type == "error"]
    assert not errors


def test_finetuning_starts_from_zero_shot_and_never_ends_worse_on_validation(tiny_episodes, tiny_dataset_dir):
    """Step 0 of fine-tuning is the zero-shot model (same normaliser) and a selection candidate:
    with a zero learning rate fine-tuning *is* zero-shot; with training, the selected validation
    loss is never above zero-shot's."""
    import jax
    import numpy as np

    from experiments import cross_embodiment as xe
    from rlhf_jax.data import rlds
    from rlhf_jax.train import sweep
    from rlhf_jax.train.sweep_data import make_sweep_data

    config = xe_config.get_config("tiny")
    meta = rlds.load_metadata(tiny_dataset_dir)
    fk = "joint"
    src = xe.preference_data(config, tiny_episodes, config.source_embodiments, config.n_source, fk, meta)
    tgt = xe.preference_data(config, tiny_episodes, (config.target_embodiment,), max(config.n_target), fk, meta)
    src_in = make_sweep_data(src, ("oracle",), (config.n_source,), config.seeds, config.members)
    tgt_in = make_sweep_data(tgt, ("oracle", "oracle"), config.n_target, config.seeds, config.members)
    model, tx = xe._model_tx(config, fk, config.pretrain_steps)  # pylint: disable=protected-access
    pre = xe.train_phase(config, src_in, model, tx, config.pretrain_steps, log=lambda *_: None)
    zero_shot = xe.ensemble_accuracy(model, pre.best_params, src_in.norm, tgt_in)
    points = sweep.point_spec(tgt_in.grid)
    finetune = np.asarray(points.condition) == 0
    frozen = config.copy_and_resolve_references()
    frozen.optimizer.learning_rate = 0.0
    for cfg in (frozen, config):
        model_t, tx_t = xe._model_tx(cfg, fk, cfg.target_steps)  # pylint: disable=protected-access
        states = xe.train_phase(cfg, tgt_in, model_t, tx_t, cfg.target_steps, init_params=pre.best_params,
                                finetune_condition=0, log=lambda *_: None, init_norm=src_in.norm)
        pre_per_point = jax.tree.map(lambda x: x[points.seed_index], pre.best_params)
        val0, _ = sweep.make_validation(model_t)(
            pre_per_point, jax.tree.map(lambda x: np.broadcast_to(x, (len(finetune), config.members) + x.shape),
                                        src_in.norm), points.condition, tgt_in.data)
        best = np.asarray(states.best_val_loss)
        assert np.all(best[finetune] <= np.asarray(val0)[finetune] + 1e-6)
        if cfg is frozen:
            assert np.all(np.asarray(states.best_step)[finetune] == 0)
            acc = xe.ensemble_accuracy(model_t, states.best_params, src_in.norm, tgt_in)
            np.testing.assert_allclose(acc[finetune], zero_shot[np.asarray(points.seed_index)[finetune]])
