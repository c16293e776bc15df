"""Per-step rewards for PPO-RLHF: gold rubric, learned reward models (single or ensemble), and
rule-based safety constraints.

A reward function has the signature

    reward_fn(obs [B, D], act [B, A], task [B], emb [B], components [B, C]) -> [B]

with obs the "joint" features of the state *before* the action (the layout reward models are
trained on, ``rlhf_jax.data.preferences``), act the requested joint velocity in rad/s padded to
MAX_DOF (as the dataset stores actions), and components the simulator's gold components. The
KL penalty to π_ref is added in ``rlhf_jax.train.ppo`` (it needs the policies' log-probs).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rlhf_jax.ensemble import aggregate
from rlhf_jax.envs import simulator as S

CONSTRAINTS = ("joint_limit", "speed", "workspace", "obstacle")
_COL = {c: i for i, c in enumerate(S.REWARD_COMPONENTS)}


def gold_reward_fn(rubric: dict | None = None) -> Callable:
    """The gold rubric total Σ_c w_c r_c as a reward function (the oracle, for baselines)."""
    w = jnp.asarray(S.rubric_vector(rubric))

    def reward_fn(obs, act, task, emb, components):
        return (components * w).sum(-1)

    return reward_fn


def learned_reward_fn(model, variables, *, ensemble: bool = False, aggregation: str = "mean",
                      lam: float = 1.0, scale: float = 1.0) -> Callable:
    """A Markovian reward model's per-step reward r(s_t, a_t) as a reward function.

    ensemble: variables stacked over K members (``rlhf_jax.ensemble``); the member rewards
    [K, B] are combined per step by ``aggregation`` (mean, min, mean_minus_std with λ = lam).
    Each step is scored as a length-1 segment, so only per-step (Markovian) models qualify.
    scale multiplies the reward (reward models are only defined up to scale and offset).
    """

    def one(v, obs, act, task, emb):
        _, step_rewards = model.apply(v, obs[:, None], act[:, None], task, emb)
        return step_rewards[:, 0]

    def reward_fn(obs, act, task, emb, components):
        if ensemble:
            members = jax.vmap(one, in_axes=(0, None, None, None, None))(variables, obs, act, task, emb)
            return scale * aggregate(members, aggregation, lam)
        return scale * one(variables, obs, act, task, emb)

    return reward_fn


class SafetySpec(NamedTuple):
    """Rule-based constraints; a weight of 0 disables a constraint's penalty (it is still counted).

    joint_margin: rad from a joint limit; speed_frac: max |action| in units of qd_max;
    workspace: [6] box (lo xyz, hi xyz) the flange must stay in; clearance: m between the
    flange and the obstacle surface (link contact counts via the gold collision component).
    weights: [4] penalty per violated step, CONSTRAINTS order. mode: "penalty" subtracts
    Σ_k w_k·1[violation_k] from the reward; "projection" also clips actions to speed_frac (the
    speed constraint then holds by construction).
    """

    joint_margin: float = 0.05
    speed_frac: float = 0.8
    workspace: tuple = (0.0, -0.8, 0.0, 0.9, 0.8, 1.0)
    clearance: float = 0.02
    weights: tuple = (1.0, 1.0, 1.0, 1.0)
    mode: str = "penalty"


def safety_spec_from_config(c) -> SafetySpec | None:
    """SafetySpec from a ConfigDict/dict (None or enabled=False gives None)."""
    if c is None or not c.get("enabled", False):
        return None
    d = {k: c[k] for k in SafetySpec._fields if k in c}
    d = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in d.items()}
    if d.get("mode", "penalty") not in ("penalty", "projection"):
        raise ValueError(f"safety.mode must be 'penalty' or 'projection', got {d['mode']!r}")
    return SafetySpec(**d)


def project_action(spec: SafetySpec, action_norm):
    """Hard constraint by projection: clip normalised actions [..., A] to ±speed_frac."""
    return jnp.clip(action_norm, -spec.speed_frac, spec.speed_frac)


def constraint_violations(spec: SafetySpec, robot, state: S.EnvState, components, action_norm):
    """Per-step violation indicators [B, 4] (CONSTRAINTS order) of the step that reached `state`.

    state: EnvState [B] after the step; components [B, C]; action_norm [B, A] requested action
    in units of qd_max (before any projection, so a projected policy's *intent* is visible).
    """
    q_min, q_max = jnp.asarray(robot.q_min), jnp.asarray(robot.q_max)
    to_limit = jnp.minimum(state.q - q_min, q_max - state.q).min(-1)
    joint = to_limit < spec.joint_margin
    speed = (jnp.abs(action_norm) > spec.speed_frac + 1e-6).any(-1)
    box = jnp.asarray(spec.workspace, jnp.float32)
    outside = ((state.eef_pos < box[:3]) | (state.eef_pos > box[3:])).any(-1)
    gap = jnp.linalg.norm(state.eef_pos - state.obstacle[..., :3], axis=-1) - state.obstacle[..., 3]
    obstacle = (gap < spec.clearance) | (components[..., _COL["collision"]] < 0) & (state.obstacle[..., 3] > 0)
    return jnp.stack([joint, speed, outside, obstacle], -1).astype(jnp.float32)


def constraint_penalty(spec: SafetySpec, violations):
    """Σ_k w_k·v_k per step: violations [B, 4] -> [B] (≥ 0; subtract it from the reward)."""
    return violations @ jnp.asarray(spec.weights, jnp.float32)


def scripted_segments(robot_name: str, tasks, policies, n_episodes: int, segment_length: int, key,
                      dt: float = 0.05, horizon: int = 50) -> dict:
    """Segments of scripted-policy rollouts for fitting a reward model in-run.

    n_episodes per (task, policy); episodes are cut into non-overlapping segments of
    segment_length. Returns numpy {obs [S, L, D] joint features, act [S, L, A] rad/s padded,
    task, emb [S] int32, gold [S] gold return of the segment}.
    """
    from rlhf_jax.envs import make_env, make_policy, rollout
    from rlhf_jax.envs.robots import EMBODIMENTS
    from rlhf_jax.evaluation.policy_eval import joint_features
    from rlhf_jax.models.policy import MAX_DOF

    out = {k: [] for k in ("obs", "act", "task", "gold")}
    for ti, task in enumerate(tasks):
        env = make_env(robot_name, task, dt=dt, horizon=horizon)
        for pi, name in enumerate(policies):
            traj = rollout(env, make_policy(name, env), jax.random.fold_in(key, 1000 * ti + pi), n_episodes)
            feats = np.asarray(joint_features(traj["obs"], env.robot.dof))
            act = np.pad(np.asarray(traj["action"]), ((0, 0), (0, 0), (0, MAX_DOF - env.robot.dof)))
            gold = np.asarray(traj["reward"])
            n_seg = horizon // segment_length
            cut = lambda x: x[:, :n_seg * segment_length].reshape((-1, segment_length) + x.shape[2:])
            out["obs"].append(cut(feats))
            out["act"].append(cut(act))
            out["gold"].append(cut(gold).sum(-1))
            out["task"].append(np.full(n_episodes * n_seg, env.task_id, np.int32))
    seg = {k: np.concatenate(v) for k, v in out.items()}
    seg["emb"] = np.full(len(seg["task"]), EMBODIMENTS.index(robot_name), np.int32)
    return seg


def fit_markovian_reward(model, variables, seg: dict, *, steps: int, keys, pairs_per_step: int = 256,
                         lr: float = 3e-3):
    """Bradley-Terry fit of per-step reward models on segments labelled by their gold return.

    variables: stacked over K members (leading [K]); keys [K]: each member draws its own
    random pairs (a bootstrap-like diversity); seg as ``scripted_segments``. The label is 1 when
    segment a has the higher gold return (an ideal annotator). Returns (variables, final loss
    [K]). For tests and self-contained quick runs; the scaling sweep
    (``rlhf_jax.train.sweep_runner``) trains the reward models of real experiments.
    """
    import optax

    from rlhf_jax.losses.bradley_terry import bradley_terry_loss

    tx = optax.adam(lr)
    obs, act, task, emb, gold = (jnp.asarray(seg[k]) for k in ("obs", "act", "task", "emb", "gold"))
    n = obs.shape[0]

    def member(params, norm, key):
        def loss_fn(p, ia, ib):
            ret = lambda i: model.apply({"params": p, "norm": norm}, obs[i], act[i], task[i], emb[i])[0]
            label = (gold[ia] > gold[ib]).astype(jnp.float32)
            return bradley_terry_loss(ret(ia), ret(ib), label)[0]

        def step(carry, k):
            p, o = carry
            ia, ib = jax.random.randint(k, (2, pairs_per_step), 0, n)
            loss, g = jax.value_and_grad(loss_fn)(p, ia, ib)
            u, o = tx.update(g, o, p)
            return (optax.apply_updates(p, u), o), loss

        (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), jax.random.split(key, steps))
        return params, losses[-20:].mean()

    params, loss = jax.jit(jax.vmap(member))(variables["params"], variables["norm"], keys)
    return {"params": params, "norm": variables["norm"]}, np.asarray(loss)


def build_learned_reward(rc, robot_name: str, tasks, key):
    """Fits a Markovian reward ensemble in-run (config.reward fields: ensemble_size, hidden,
    fit_episodes, fit_steps, segment_length, aggregation, lam, scale). Returns (reward_fn,
    model, variables, info)."""
    from rlhf_jax.envs.robots import EMBODIMENTS
    from rlhf_jax.envs.tasks import TASKS
    from rlhf_jax.models.encoders import feature_stats, set_norm_stats
    from rlhf_jax.models.reward import MarkovianReward

    from rlhf_jax.envs.policies import POLICIES

    k_data, k_init, k_fit = jax.random.split(key, 3)
    seg = scripted_segments(robot_name, tasks, POLICIES, int(rc.fit_episodes), int(rc.segment_length), k_data)
    model = MarkovianReward(num_tasks=len(TASKS), num_embodiments=len(EMBODIMENTS), hidden=tuple(rc.hidden))
    k = int(rc.ensemble_size)
    sample = (jnp.asarray(seg["obs"][:1]), jnp.asarray(seg["act"][:1]), jnp.asarray(seg["task"][:1]),
              jnp.asarray(seg["emb"][:1]))
    variables = jax.vmap(lambda kk: dict(model.init(kk, *sample)))(jax.random.split(k_init, k))
    variables = set_norm_stats(variables, feature_stats(seg["obs"]), feature_stats(seg["act"]))
    variables, loss = fit_markovian_reward(model, variables, seg, steps=int(rc.fit_steps),
                                           keys=jax.random.split(k_fit, k))
    fn = learned_reward_fn(model, variables, ensemble=True, aggregation=rc.aggregation, lam=float(rc.lam),
                           scale=float(rc.scale))
    return fn, model, variables, {"segments": int(len(seg["gold"])), "bt_loss": loss.tolist()}
