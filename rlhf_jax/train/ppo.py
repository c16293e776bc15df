"""PPO for RLHF in the pure-JAX simulator (PureJaxRL shape: the whole run is one jit).

    init, update = make_ppo(config, reward_fn, ref_variables)
    train = make_train(config, reward_fn, ref_variables)   # train(rng, hparams) -> (runner, metrics)
    jax.jit(jax.vmap(train))(rngs, hparams)                # seeds × hyper-parameters at once

One update: vmapped environments roll out `num_steps` steps (lax.scan, auto-reset at the time
limit) → values → GAE (truncation bootstraps) → `update_epochs` × `num_minibatches` clipped-PPO
steps (nested lax.scan) → KL controller and observation statistics. hparams is a dict of scalar
arrays {"beta", "clip_eps", "lr"} so sweeps over them are vmaps, not recompiles.

Per-step training reward: r_t = proxy(s_t, a_t) − β·k(log π(a_t|s_t), log π_ref(a_t|s_t)) −
penalty_t, with k the k1 or k3 estimator and penalty the safety constraints' (if any). Every
update reports gold return and components, proxy return and KL per episode, β, and the
per-constraint violation rates of its rollout (means over all its episodes).

Observation normalisation: running mean/variance of the policy features (merged after each
update, so the statistics are fixed within an update and PPO's ratio is exactly 1 at its start).
The value net always sees normalised features. A policy initialised from π_ref keeps π_ref's
own normaliser (else it would not start equal to π_ref); a policy from scratch uses the
running statistics.
"""
from __future__ import annotations

from typing import Callable, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from rlhf_jax.envs import robots as R
from rlhf_jax.envs import simulator as S
from rlhf_jax.envs import tasks as T
from rlhf_jax.evaluation.policy_eval import VIOLATIONS, joint_features
from rlhf_jax.features import feature_dim
from rlhf_jax.losses import kl as K
from rlhf_jax.losses import ppo as L
from rlhf_jax.models.policy import MAX_DOF, action_log_prob, make_policy, sample_action
from rlhf_jax.rlhf_reward import (CONSTRAINTS, constraint_penalty, constraint_violations, project_action,
                                  safety_spec_from_config)
from rlhf_jax.train.state import global_norm

OBS_DIM = feature_dim("joint")


class ValueNet(nn.Module):
    """V(s): MLP on normalised features, the time fraction t/horizon and a one-hot task id.

    The time fraction matters: with a time limit the return-to-go depends on the steps left,
    and GAE bootstraps truncated steps from V of the final observation.
    """

    hidden: Sequence[int] = (64, 64)

    @nn.compact
    def __call__(self, x):
        for w in self.hidden:
            x = nn.tanh(nn.Dense(w)(x))
        return nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0))(x)[..., 0]


@flax.struct.dataclass
class Runner:
    """Everything one training run carries between updates (vmappable pytree)."""

    policy: dict  # {"params", "norm"} of the GaussianPolicy
    value: dict  # value net params
    opt_state: optax.OptState
    env: S.EnvState  # [B]
    obs_count: jax.Array  # running statistics of the features (Chan et al. parallel merge)
    obs_mean: jax.Array
    obs_var: jax.Array
    beta: jax.Array
    update: jax.Array
    rng: jax.Array


def _merge_stats(count, mean, var, x):
    """Running (count, mean, var) merged with a batch x [N, D] (parallel-variance formula)."""
    n = x.shape[0]
    b_mean, b_var = x.mean(0), x.var(0)
    tot = count + n
    delta = b_mean - mean
    new_mean = mean + delta * n / tot
    m2 = var * count + b_var * n + delta**2 * count * n / tot
    return tot, new_mean, m2 / tot


def _normalize(runner_mean, runner_var, x):
    return jnp.clip((x - runner_mean) / jnp.sqrt(runner_var + 1e-6), -10.0, 10.0)


def make_ppo(config, reward_fn: Callable, ref_variables: dict | None = None, policy_model=None):
    """Builds (init(rng, hparams) -> Runner, update(runner, hparams) -> (Runner, metrics)).

    config: ConfigDict with env {robot, tasks, dt, horizon}, ppo {num_envs, num_steps,
    update_epochs, num_minibatches, gamma, gae_lambda, vf_clip, vf_coef, ent_coef,
    max_grad_norm, normalize_advantages, value_hidden}, kl {estimator, schedule, target,
    horizon, beta_end, total_updates}, model (policy, as configs/sft.py), optional safety.
    ref_variables: π_ref's {"params", "norm"}; the policy starts from them. None: the policy
    starts from a random init and π_ref is that init (KL then measures drift from it).
    """
    e, p, kc = config.env, config.ppo, config.kl
    robot = R.ROBOTS[e.robot]
    dof, emb_id = robot.dof, R.EMBODIMENTS.index(e.robot)
    horizon, dt = int(e.horizon), float(e.dt)
    n_envs, n_steps = int(p.num_envs), int(p.num_steps)
    n_mb = int(p.num_minibatches)
    if (n_envs * n_steps) % n_mb:
        raise ValueError(f"num_envs*num_steps = {n_envs * n_steps} is not divisible by num_minibatches={n_mb}")
    task_ids = jnp.asarray(np.resize([T.task_id(t) for t in e.tasks], n_envs), jnp.int32)
    emb = jnp.full((n_envs,), emb_id, jnp.int32)
    mask = jnp.broadcast_to((jnp.arange(MAX_DOF) < dof).astype(jnp.float32), (n_envs, MAX_DOF))
    qd_max = jnp.asarray(robot.qd_max, jnp.float32)
    policy = policy_model or make_policy(config.model, len(T.TASKS), len(R.EMBODIMENTS))
    value_net = ValueNet(tuple(p.value_hidden))
    safety = safety_spec_from_config(config.get("safety"))
    from_ref = ref_variables is not None
    tx = optax.chain(optax.clip_by_global_norm(p.max_grad_norm), optax.scale_by_adam(eps=1e-5))
    rubric_w = jnp.asarray(S.rubric_vector(config.get("rubric")))
    reset = jax.vmap(lambda k, t: S.reset_state(robot, t, k))
    step_env = jax.vmap(lambda s, a: S.step_state(robot, dt, horizon, False, s, a))

    def features(env_state):
        return joint_features(jax.vmap(lambda s: S.observe_state(robot, False, s))(env_state), dof)

    def value_input(runner, feats, t):
        x = _normalize(runner.obs_mean, runner.obs_var, feats)
        return jnp.concatenate([x, (t / horizon)[..., None].astype(jnp.float32),
                                jnp.broadcast_to(jax.nn.one_hot(task_ids, len(T.TASKS)),
                                                 x.shape[:-1] + (len(T.TASKS),))], -1)

    def policy_vars(runner, params):
        if from_ref:
            return {"params": params, "norm": runner.policy["norm"]}
        norm = {"obs_norm": {"obs_mean": runner.obs_mean, "obs_std": jnp.sqrt(runner.obs_var + 1e-6)}}
        return {"params": params, "norm": norm}

    def init(rng, hparams):
        k_pol, k_val, k_env, rng = jax.random.split(rng, 4)
        dummy = jnp.zeros((1, OBS_DIM), jnp.float32)
        if from_ref:
            pol = dict(ref_variables)
        else:
            pol = dict(policy.init(k_pol, dummy, jnp.zeros((1,), jnp.int32), jnp.zeros((1,), jnp.int32)))
            pol["ref"] = pol["params"]
        val = value_net.init(k_val, jnp.zeros((1, OBS_DIM + 1 + len(T.TASKS))))["params"]
        params = {"policy": pol["params"], "value": val}
        return Runner(policy=pol, value=val, opt_state=tx.init(params),
                      env=reset(jax.random.split(k_env, n_envs), task_ids),
                      obs_count=jnp.asarray(1e-4, jnp.float32), obs_mean=jnp.zeros((OBS_DIM,)),
                      obs_var=jnp.ones((OBS_DIM,)), beta=jnp.asarray(hparams["beta"], jnp.float32),
                      update=jnp.zeros((), jnp.int32), rng=rng)

    # π_ref is fixed: its variables are constants of the program (captured, never optimised).
    ref_vars_const = None if ref_variables is None else jax.tree.map(jnp.asarray, dict(ref_variables))

    def rollout(runner):
        pvars = policy_vars(runner, runner.policy["params"])
        # From scratch, π_ref is the initial parameters (kept in runner.policy["ref"]).
        ref_vars = ref_vars_const if from_ref else policy_vars(runner, runner.policy["ref"])

        def env_step(carry, key):
            env_state = carry
            k_act, k_reset = jax.random.split(key)
            feats = features(env_state)
            mean, log_std = policy.apply(pvars, feats, task_ids, emb)
            a = sample_action(k_act, mean, log_std, mask, squash=policy.squash)
            logp = action_log_prob(mean, log_std, a, mask, squash=policy.squash)
            rm, rs = policy.apply(ref_vars, feats, task_ids, emb)
            ref_logp = action_log_prob(rm, rs, a, mask, squash=policy.squash)
            a_env = project_action(safety, a) if safety is not None and safety.mode == "projection" else a
            act_rad = a_env * jnp.pad(qd_max, (0, MAX_DOF - dof))
            new_state, obs, rc, done = step_env(env_state, act_rad[:, :dof])
            proxy = reward_fn(feats, act_rad, task_ids, emb, rc)
            gold = (rc * rubric_w).sum(-1)
            viol = (constraint_violations(safety, robot, new_state, rc, a) if safety is not None
                    else jnp.zeros((n_envs, len(CONSTRAINTS))))
            fresh = reset(jax.random.split(k_reset, n_envs), task_ids)
            next_env = jax.tree.map(lambda r, s: jnp.where(done.reshape((-1,) + (1,) * (s.ndim - 1)), r, s),
                                    fresh, new_state)
            out = {"feats": feats, "next_feats": joint_features(obs, dof), "t": env_state.t,
                   "action": a, "logp": logp, "ref_logp": ref_logp, "proxy": proxy, "gold": gold,
                   "rc": rc, "done": done, "viol": viol}
            return next_env, out

        keys = jax.random.split(jax.random.fold_in(runner.rng, runner.update), n_steps)
        env_state, traj = jax.lax.scan(env_step, runner.env, keys)
        return env_state, traj

    def update(runner, hparams):
        clip_eps, lr = hparams["clip_eps"], hparams["lr"]
        if kc.schedule == "fixed":
            beta = jnp.asarray(hparams["beta"], jnp.float32)
        elif kc.schedule == "annealed":
            beta = K.annealed_beta(runner.update, kc.total_updates, hparams["beta"], kc.beta_end)
        elif kc.schedule == "adaptive":
            beta = runner.beta
        else:
            raise ValueError(f"kl.schedule must be one of {K.KL_SCHEDULES}, got {kc.schedule!r}")
        env_state, traj = rollout(runner)
        kl_step = K.kl_estimate(traj["logp"], traj["ref_logp"], kc.estimator)  # [T, B]
        penalty = constraint_penalty(safety, traj["viol"]) if safety is not None and safety.mode == "penalty" else 0.0
        reward = traj["proxy"] - beta * kl_step - penalty
        vin = value_input(runner, traj["feats"], traj["t"])
        vin_next = value_input(runner, traj["next_feats"], traj["t"] + 1)
        values = value_net.apply({"params": runner.value}, vin)
        next_values = value_net.apply({"params": runner.value}, vin_next)
        terminated = jnp.zeros_like(traj["done"])  # the simulator only truncates (time limit)
        adv, targets = L.gae(reward, values, next_values, terminated, traj["done"], p.gamma, p.gae_lambda)

        batch = {"feats": traj["feats"], "action": traj["action"], "logp": traj["logp"], "adv": adv,
                 "targets": targets, "values": values, "vin": vin,
                 "task": jnp.broadcast_to(task_ids, traj["done"].shape)}
        batch = jax.tree.map(lambda x: x.reshape((n_steps * n_envs,) + x.shape[2:]), batch)

        def loss_fn(params, mb):
            pv = policy_vars(runner, params["policy"])
            mean, log_std = policy.apply(pv, mb["feats"], mb["task"], jnp.full_like(mb["task"], emb_id))
            m = mask[:1]
            logp = action_log_prob(mean, log_std, mb["action"], m, squash=policy.squash)
            ent = L.gaussian_entropy(log_std, m)
            v = value_net.apply({"params": params["value"]}, mb["vin"])
            a = L.normalize_advantages(mb["adv"]) if p.normalize_advantages else mb["adv"]
            return L.ppo_loss(logp, mb["logp"], a, v, mb["values"], mb["targets"], ent, clip_eps=clip_eps,
                              vf_clip=p.vf_clip, vf_coef=p.vf_coef, ent_coef=p.ent_coef)

        def mb_step(carry, mb):
            params, opt_state = carry
            (_, m), g = jax.value_and_grad(loss_fn, has_aux=True)(params, mb)
            upd, opt_state = tx.update(g, opt_state, params)
            upd = jax.tree.map(lambda u: -lr * u, upd)  # lr is traced: sweeps vmap over it
            m = dict(m, grad_norm=global_norm(g), update_norm=global_norm(upd))
            return (optax.apply_updates(params, upd), opt_state), m

        def epoch(carry, key):
            perm = jax.random.permutation(key, n_steps * n_envs)
            mbs = jax.tree.map(lambda x: x[perm].reshape((n_mb, -1) + x.shape[1:]), batch)
            return jax.lax.scan(mb_step, carry, mbs)

        k_ep = jax.random.fold_in(jax.random.fold_in(runner.rng, runner.update), 1)
        params = {"policy": runner.policy["params"], "value": runner.value}
        (params, opt_state), loss_m = jax.lax.scan(epoch, (params, runner.opt_state),
                                                   jax.random.split(k_ep, p.update_epochs))

        per_ep = horizon  # per-step means × horizon = per-episode sums (episodes are fixed-length)
        kl_ep = kl_step.mean() * per_ep
        new_beta = beta
        if kc.schedule == "adaptive":
            new_beta = K.adaptive_beta(beta, kl_ep, kc.target, n_steps * n_envs, kc.horizon)
        count, mean, var = _merge_stats(runner.obs_count, runner.obs_mean, runner.obs_var,
                                        traj["feats"].reshape(-1, OBS_DIM))
        metrics = {k: v.mean() for k, v in loss_m.items()}
        metrics.update({
            "gold_return": traj["gold"].mean() * per_ep, "proxy_return": traj["proxy"].mean() * per_ep,
            "kl": kl_ep, "kl_k1": K.kl_k1(traj["logp"], traj["ref_logp"]).mean() * per_ep,
            "kl_k3": K.kl_k3(traj["logp"], traj["ref_logp"]).mean() * per_ep,
            "beta": beta, "penalty_return": jnp.mean(penalty) * per_ep,
            "success_rate": jnp.sum(traj["rc"][..., 1] * traj["done"]) / jnp.maximum(traj["done"].sum(), 1),
        })
        for i, c in enumerate(S.REWARD_COMPONENTS):
            metrics[f"gold/{c}"] = traj["rc"][..., i].mean() * per_ep
        for i, c in enumerate(CONSTRAINTS):
            metrics[f"violations/{c}"] = traj["viol"][..., i].mean()
        for c in VIOLATIONS:  # the gold components' own violation rates, always reported
            metrics[f"gold_violations/{c}"] = (traj["rc"][..., S.REWARD_COMPONENTS.index(c)] < 0).mean()
        pol = dict(runner.policy, params=params["policy"])
        runner = runner.replace(policy=pol, value=params["value"], opt_state=opt_state, env=env_state,
                                obs_count=count, obs_mean=mean, obs_var=var, beta=new_beta,
                                update=runner.update + 1)
        return runner, metrics

    return init, update, policy


def make_train(config, reward_fn: Callable, ref_variables: dict | None = None, policy_model=None):
    """Returns the pure ``train(rng, hparams) -> (Runner, metrics [num_updates])`` (one scan)."""
    init, update, _ = make_ppo(config, reward_fn, ref_variables, policy_model)

    def train(rng, hparams):
        runner = init(rng, hparams)
        return jax.lax.scan(lambda r, _: update(r, hparams), runner, None, length=config.ppo.num_updates)

    return train


def default_hparams(config) -> dict:
    """{"beta", "clip_eps", "lr"} scalar arrays from config.ppo / config.kl."""
    return {"beta": jnp.asarray(config.kl.beta, jnp.float32),
            "clip_eps": jnp.asarray(config.ppo.clip_eps, jnp.float32),
            "lr": jnp.asarray(config.ppo.learning_rate, jnp.float32)}


def runner_shardings(runner, mesh):
    """Shardings for a PPO runner (or its ``jax.eval_shape``): every array of ``runner.env``
    split over the mesh's "data" axis along its leading (environment) dimension, the rest
    replicated. Raises ValueError when the environments do not divide over the devices."""
    from rlhf_jax.sharding import batch_sharded, replicated

    n = mesh.shape["data"]

    def spec(path, leaf):
        in_env = bool(path) and getattr(path[0], "name", None) == "env"
        if not (in_env and len(leaf.shape) > 0):
            return replicated(mesh)
        if leaf.shape[0] % n:
            raise ValueError(f"ppo.num_envs: {leaf.shape[0]} environments do not divide over the {n} devices "
                             "of the data mesh; use a multiple of the device count")
        return batch_sharded(mesh)

    return jax.tree_util.tree_map_with_path(spec, runner)


def shard_update(update: Callable, mesh, runner_like):
    """Data-parallel PPO: environments split over the mesh's "data" axis, the rest replicated.

    ``update(runner, hparams) -> (runner, metrics)`` may be one update or a scanned chunk of
    them; ``runner_like`` is a runner or its ``jax.eval_shape``. Returns (jitted update, runner
    shardings): create the runner with ``jax.jit(init, out_shardings=shardings)`` (or place one
    with ``jax.device_put``). Rollouts, GAE and the loss run on each device's environments; XLA
    inserts the cross-device reductions of the minibatch gradients and statistics (no pmean: a
    replicated parameter's gradient is already global).
    """
    from rlhf_jax.sharding import replicated

    shardings = runner_shardings(runner_like, mesh)
    step = jax.jit(update, in_shardings=(shardings, replicated(mesh)), out_shardings=(shardings, replicated(mesh)))
    return step, shardings
