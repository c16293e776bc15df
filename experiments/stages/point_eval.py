"""Evaluation of pipeline policies on the pipeline's evaluation states: deterministic episodes
(``rlhf_jax.evaluation.rollout_eval``) per arm × task, scored by the gold rubric, a reward model
(proxy) and the KL to π_SFT, reduced to one row per policy.

    raw = policy_episodes(config, arm, dt, rm, sft, model, variables)     # {"arm/task": arrays}
    row = policy_row(raw_by_arm, sft_raw_by_arm)                          # gold, success, incidents, …

A row's ``gold_return`` is the mean over arms × tasks × episodes: one number per trained policy,
the unit the seed statistics (``rlhf_jax.evaluation.seed_statistics``) resample.
"""
from __future__ import annotations

import jax
import numpy as np

from rlhf_jax.checkpoint import restore_policy
from rlhf_jax.envs import simulator as S
from rlhf_jax.envs.robots import EMBODIMENTS
from rlhf_jax.envs.tasks import TASKS
from rlhf_jax.evaluation import incidents as I
from rlhf_jax.evaluation.policy_eval import episode_metrics
from rlhf_jax.evaluation.reward_accuracy import episode_pair_accuracy, paired_accuracy
from rlhf_jax.evaluation.rollout_eval import arm_key, episodes
from rlhf_jax.models.policy import make_policy


def load_stacked(ckpt: str):
    """(policy module, stacked variables [points, ...], meta) of a points stage's checkpoint."""
    variables, meta = restore_policy(ckpt)
    return make_policy(meta["model"], len(TASKS), len(EMBODIMENTS)), variables, meta


def point(variables, i: int):
    """Point ``i``'s variables of a stacked checkpoint."""
    return jax.tree.map(lambda x: x[i], variables)


def gold_returns(components) -> np.ndarray:
    """[..., T, C] gold components -> [...] episode gold returns (the rubric's weighted sum)."""
    return np.asarray(components).sum(-2) @ S.rubric_vector()


def policy_episodes(config, arm: str, dt: float, rm, sft, model=None, variables=None, keep_tasks=None) -> dict:
    """{"arm/task": {"components" [E, T, C], "proxy" [E], "kl" [E]}} of one policy on ``arm``'s
    evaluation states (model None: the scripted expert); proxy under ``rm``, KL to ``sft`` =
    (module, variables). ``keep_tasks``: only those tasks' entries (a policy trained on them
    alone); the states are the pipeline's, drawn over every task, so each task's are the same for
    every policy."""
    ep = episodes(arm, tuple(config.tasks), arm_key(config.eval.seed, arm), int(config.eval.n_episodes),
                  model=model, variables=variables, reward=rm, dt=dt, ref_model=sft[0], ref_variables=sft[1])
    return {f"{arm}/{task}": {k: np.asarray(v[i]) for k, v in ep.items()} for i, task in enumerate(config.tasks)
            if keep_tasks is None or task in keep_tasks}


def policy_row(raw: dict, sft_raw: dict, expert: bool = False) -> dict:
    """One policy's row from its episodes and π_SFT's on the same states (proxy under the same
    reward model): gold, success, violations, proxy, KL to π_SFT, incident rate (per
    ``rlhf_jax.evaluation.incidents``), reward-model accuracy on pairs of its own episodes, and
    the gold return per arm/task."""
    per, masks, acc = {}, {}, []
    for combo, e in raw.items():
        gold, ref_gold = gold_returns(e["components"]), gold_returns(sft_raw[combo]["components"])
        per[combo] = {**episode_metrics(e["components"]), "gold_return": float(gold.mean())}
        masks[combo] = I.incident_mask(e["proxy"], gold, sft_raw[combo]["proxy"], ref_gold)
        acc.append(episode_pair_accuracy(e["proxy"], gold))
    mean = lambda k: float(np.mean([p[k] for p in per.values()]))
    return {"gold_return": mean("gold_return"), "success": mean("success_rate"),
            "violations": mean("violations/any_rate"),
            "proxy_return": float(np.mean([e["proxy"].mean() for e in raw.values()])),
            "kl_to_sft": float("nan") if expert else float(np.mean([e["kl"].mean() for e in raw.values()])),
            "incident_rate": I.incident_summary(masks)["rate"],
            "rm_accuracy_on_own_episodes": float(np.nanmean(acc)),
            "gold_components": {c: mean(f"gold/{c}") for c in S.REWARD_COMPONENTS},
            "gold_per_arm_task": {k: p["gold_return"] for k, p in per.items()}}


def expert_vs_sft(expert_raw: dict, sft_raw: dict) -> dict:
    """Per arm/task: does the reward model rank the expert above π_SFT? Its accuracy on expert-vs-π_SFT
    pairs from the same initial states, and the mean proxy and gold of both."""
    out = {}
    for combo, s in sft_raw.items():
        x = expert_raw[combo]
        gx, gs = gold_returns(x["components"]), gold_returns(s["components"])
        out[combo] = {"paired_accuracy": paired_accuracy(x["proxy"], gx, s["proxy"], gs),
                      "proxy_sft": float(s["proxy"].mean()), "proxy_expert": float(x["proxy"].mean()),
                      "gold_sft": float(gs.mean()), "gold_expert": float(gx.mean()),
                      "ranks_expert_above_sft": bool(x["proxy"].mean() > s["proxy"].mean())}
    return out
