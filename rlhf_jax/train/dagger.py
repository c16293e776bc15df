"""DAgger against the scripted expert: states the learner visits, labelled with expert actions.

Behaviour cloning alone sees only the states the expert (and its noisy variant) visited; its
small errors compound into states no demonstration covers (Ross et al., 2011). Each DAgger
round rolls the current policy out on every (arm, task) — its deterministic action plus
Gaussian exploration noise of ``noise`` × qd_max, so the visited states fan out around its own
path — and labels every visited state with the clean expert's joint velocity. The learner keeps
training on the union of demonstrations and all rounds' relabelled states.

The expert is ``rlhf_jax.envs.policies.expert_velocity`` with the "expert" preset, the same
controller that generated the dataset's demonstrations; it reads only the simulator state, all of
which the "joint" features expose (q, qd, eef, goal, obstacle, box).
"""
from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rlhf_jax import features as F
from rlhf_jax.envs import policies as P
from rlhf_jax.envs import robots as R
from rlhf_jax.envs import simulator as S
from rlhf_jax.envs import tasks as T
from rlhf_jax.models.policy import GaussianPolicy, MAX_DOF, sample_action


@functools.lru_cache(maxsize=32)
def _relabel_program(model: GaussianPolicy, robot_name: str, dt: float, horizon: int):
    """jit((variables, keys [E], tasks [E], noise []) -> (obs [E, T, D], expert act [E, T, A],
    components [E, T, C])) for one arm; expert actions in units of qd_max, padded to MAX_DOF."""
    robot = R.ROBOTS[robot_name]
    dof, emb = robot.dof, jnp.int32(R.EMBODIMENTS.index(robot_name))
    mask = jnp.arange(MAX_DOF) < dof
    qd_max = jnp.asarray(robot.qd_max, jnp.float32)
    expert = {k: jnp.float32(v) for k, v in P.PRESETS["expert"].items()}

    def episode(variables, key, task, noise):
        k_reset, k_noise = jax.random.split(key)
        state = S.reset_state(robot, task, k_reset)
        eps = jax.random.normal(k_noise, (horizon, dof), jnp.float32)  # drawn up front: cheaper to compile

        def body(s, e):
            feats = F.features(S.observe_state(robot, False, s), dof, "joint", xp=jnp)
            label = P.expert_velocity(robot, expert, s) / qd_max
            mean, log_std = model.apply(variables, feats, task, emb)
            a = sample_action(None, mean, log_std, mask, squash=model.squash, deterministic=True)[:dof]
            a = jnp.clip(a + noise * e, -1.0, 1.0)
            s, _, rc, _ = S.step_state(robot, dt, horizon, False, s, a * qd_max)
            return s, (feats, F.pad_joints(label, jnp), rc)

        _, out = jax.lax.scan(body, state, eps)
        return out

    return jax.jit(jax.vmap(episode, in_axes=(None, 0, 0, None)))


def relabelled_rollouts(model: GaussianPolicy, variables: dict, embodiments: Sequence[str],
                        tasks: Sequence[str], n_episodes: int, key, *, noise: float, dt: float,
                        horizon: int = 50) -> tuple[dict, dict]:
    """One DAgger round: the policy's rollouts on every (arm, task), expert-labelled.

    Returns (data, info): data in the SFT transition layout of ``rlhf_jax.train.sft`` (obs
    [N, D], act [N, A] expert actions / qd_max, task, embodiment [N], act_mask [N, A]) with
    N = len(embodiments)·len(tasks)·n_episodes·horizon; info has the rollouts' success rate
    (the learner's, with exploration noise) per arm.
    """
    from rlhf_jax.evaluation.policy_eval import episode_metrics  # lazy: evaluation imports training

    parts, info = [], {}
    task_ids = np.repeat([T.task_id(t) for t in tasks], n_episodes).astype(np.int32)
    for emb in embodiments:
        run = _relabel_program(model, emb, float(dt), int(horizon))
        keys = jax.random.split(jax.random.fold_in(key, R.EMBODIMENTS.index(emb)), len(task_ids))
        obs, act, rc = jax.device_get(run(variables, keys, jnp.asarray(task_ids), jnp.float32(noise)))
        n = obs.shape[0] * obs.shape[1]
        e = R.EMBODIMENTS.index(emb)
        parts.append({"obs": obs.reshape(n, -1), "act": act.reshape(n, -1),
                      "task": np.repeat(task_ids, horizon), "embodiment": np.full(n, e, np.int32),
                      "act_mask": np.broadcast_to(np.asarray(F.action_mask(R.ROBOTS[emb].dof)), (n, MAX_DOF))})
        info[emb] = round(episode_metrics(rc)["success_rate"], 4)
    return concat_transitions(parts), info


def concat_transitions(parts: Sequence[dict]) -> dict:
    """Row-wise concatenation of SFT transition dicts with the same keys."""
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]).astype(parts[0][k].dtype) for k in parts[0]}
