"""The benchmark tables of benchmarks/README.md are the ones rendered from the committed benchmark JSONs."""
import json
import os

import jax
import jax.numpy as jnp
import pytest

from benchmarks import readme_tables
from benchmarks.common import dense_macs
from configs.scaling_sweep import get_config
from rlhf_jax.models.reward import make_reward_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")


@pytest.mark.parametrize("name", sorted(readme_tables.TABLES))
def test_benchmark_page_table_matches_the_committed_json(name):
    with open(os.path.join(ROOT, readme_tables.DOC_PAGE)) as f:
        readme = f.read()
    start = readme_tables.START.format(name) + "\n"
    end = "\n" + readme_tables.END.format(name)
    assert start in readme and end in readme, f"{readme_tables.DOC_PAGE} has no generated block for {name}"
    assert readme.split(start, 1)[1].split(end, 1)[0] == readme_tables.rendered(RESULTS)[name], (
        f"{readme_tables.DOC_PAGE}'s {name} table is stale: run python -m benchmarks.readme_tables")


def test_blocks_are_replaced_in_place_and_a_missing_block_is_refused():
    text = "a\n<!-- bench-table:start ppo -->\nold\n<!-- bench-table:end ppo -->\nb\n"
    new = readme_tables.replace_blocks(text, {"ppo": "new"})
    assert new == "a\n<!-- bench-table:start ppo -->\nnew\n<!-- bench-table:end ppo -->\nb\n"
    assert readme_tables.replace_blocks(new, {"ppo": "new"}) == new
    with pytest.raises(ValueError, match="rm_sweep"):
        readme_tables.replace_blocks(text, {"rm_sweep": "x"})


def test_paper_grid_flops_follow_the_paper_config():
    c = get_config("paper")
    flops, models = readme_tables.paper_grid_flops()
    assert models == len(c.conditions) * len(c.n_values) * len(c.seeds) * c.members
    model = make_reward_model("markovian", num_tasks=4, num_embodiments=3, hidden=tuple(c.model_sizes[0]))
    i = jnp.zeros((1,), jnp.int32)
    params = model.init(jax.random.key(0), jnp.zeros((1, 2, 39)), jnp.zeros((1, 2, 7)), i, i)["params"]
    macs = dense_macs(params)  # from the real network, not from the renderer's layer widths
    # 3 × forward FLOPs of total_steps × batch pairs, plus the validation passes' forward FLOPs
    per_model = (3 * c.total_steps * c.batch_size * 2 + c.total_steps // c.eval_every * 2 * c.n_val) * c.segment_length * 2 * macs
    assert flops == pytest.approx(models * per_model)


def test_the_ppo_update_rate_is_the_rest_of_the_loops_time():
    with open(os.path.join(RESULTS, "ppo.json")) as f:
        d = json.load(f)
    d.update(ppo_rlhf_env_steps_per_s=1000.0, rollout_share_of_time=0.25,
             flops_per_env_step=dict(d["flops_per_env_step"], update_flops=3e6))
    row = next(line for line in readme_tables.ppo_table(d).splitlines() if "update epochs (the rest" in line)
    assert "| 4 GFLOP/s, 75% of the loop's time |" in row  # 3e6 FLOPs × 1,000/s / 0.75


def test_the_compile_cache_rows_read_each_runs_warm_over_cold():
    with open(os.path.join(RESULTS, "compile_cache.json")) as f:
        d = json.load(f)
    run = d["runs"][0]
    run.update(process_warm_over_cold=0.25, process_s_saved=9.0)
    run["warm"] = dict(run["warm"], process_s=3.0, cache_hits=7)
    row = next(line for line in readme_tables.compile_cache_table(d).splitlines() if line.startswith("| warm"))
    assert row.startswith("| warm: the same program in the next fresh process | 3.0 s (**0.25×** cold, 9.0 s saved)")
    assert row.endswith("; 7 cache hits |")


def test_the_bf16_rows_read_the_ratio_and_the_verdict_from_the_json():
    with open(os.path.join(RESULTS, "bf16_sweep.json")) as f:
        d = json.load(f)
    d["bf16_vs_f32"].update(steps_per_s_bf16_over_f32=1.5, within_seed_spread=False,
                            test_accuracy_bf16_minus_f32=-1e-16)
    table = readme_tables.bf16_sweep_table(d)
    assert "**1.50×** float32's steps/s |" in table
    assert "| +0.0000; " in table and "— **outside** 2 standard errors of float32 |" in table


@pytest.mark.parametrize("name, render", [("sweep_levers_cpu", readme_tables.sweep_levers_table),
                                          ("ppo_levers_cpu", readme_tables.ppo_levers_table)])
def test_the_lever_rows_read_prediction_speedup_and_difference_from_the_json(name, render):
    with open(os.path.join(RESULTS, f"{name}.json")) as f:
        d = json.load(f)
    lever = d["levers"][1]
    difference = "max_val_loss_difference" if "max_val_loss_difference" in lever else "max_param_difference"
    lever.update(predicted_speedup=[0.5, 3.25], speedup=2.5, **{difference: 0.0})
    rows = [line for line in render(d).splitlines() if line.startswith("| `")]
    assert len(rows) == len(d["levers"]) and rows[0].split(" | ")[1] == "(the reference)"
    cells = rows[1].split(" | ")
    assert cells[0] == f"| `{lever['lever']}`" and cells[1] == "0.50–3.25×"
    assert cells[4] == "2.50×" and cells[5] == "0 |"
