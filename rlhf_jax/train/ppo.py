"""PPO for RLHF in the pure-JAX simulator: brax-style pieces, one update contract, one jit per run.

    model, tx = make_actor_critic(config, policy_model, from_ref), make_ppo_optimizer(config)
    init = make_init(config, model, tx, ref_variables)       # init(rng, hparams) -> PPOState
    update = make_ppo_update(config, model, tx)              # update(state, traj) -> (state, metrics)
    train_step = make_train_step(config, model, tx, reward_fn)   # rollout, then update
    train = make_train(config, reward_fn, ref_variables)     # train(rng, hparams) -> (state, metrics)
    jax.jit(jax.vmap(train))(rngs, hparams)                  # seeds × hyper-parameters at once

One training step: ``ppo_rollout.rollout`` steps the vmapped environments ``num_steps`` times
(the batch) → ``ppo_targets`` (r_t = proxy − β·k(log π, log π_ref) − penalty_t, values, GAE with
truncation bootstrapped) → ``ppo_epochs`` (``update_epochs`` × ``num_minibatches`` clipped-PPO
steps, each through ``train.state.apply_gradients``) → KL controller and feature statistics.

Traced hyper-parameters: hparams {"beta", "clip_eps", "lr"} (scalar arrays) are given once, to
``init``, and live in the state from then on — lr in the optimiser state
(``make_optimizer(inject=True)``), β₀ and clip_eps in ``PPOState.hparams`` — so sweeps over them
are vmaps over states, not recompiles.

Feature normalisation: running mean/variance of the policy features, merged after each update,
so the statistics are fixed within an update and PPO's ratio is exactly 1 at its start. The
value net always sees normalised features. A policy initialised from π_ref keeps π_ref's own
normaliser (else it would not start equal to π_ref); a policy from scratch reads the running
statistics. π_ref shares the policy's normaliser either way.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from rlhf_jax.errors import ConfigError, describe
from rlhf_jax.envs import robots as R
from rlhf_jax.envs import simulator as S
from rlhf_jax.envs import tasks as T
from rlhf_jax.envs.constraints import constraint_penalty
from rlhf_jax.losses import kl as K
from rlhf_jax.losses import ppo as L
from rlhf_jax.models.policy import action_log_prob, make_policy
from rlhf_jax.train.ppo_config import validate_ppo_config  # noqa: F401  pylint: disable=unused-import
from rlhf_jax.train.ppo_rollout import (OBS_DIM, VALUE_IN_DIM, PPOEnv, make_ppo_env, merge_stats, reset_envs,
                                        rollout, rollout_metrics, running_norm, value_inputs)
from rlhf_jax.train.state import TrainState, apply_gradients, make_optimizer, set_learning_rate


class ValueNet(nn.Module):
    """V(s): MLP on ``ppo_rollout.value_inputs`` (normalised features, time fraction, task)."""

    hidden: Sequence[int] = (64, 64)

    @nn.compact
    def __call__(self, x):
        for w in self.hidden:
            x = nn.tanh(nn.Dense(w)(x))
        return nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0))(x)[..., 0]


class ActorCritic(NamedTuple):
    """The modules PPO trains. running_norm: the policy reads the run's feature statistics
    (trained from scratch) instead of keeping its own normaliser (initialised from π_ref)."""

    policy: nn.Module
    value: nn.Module
    running_norm: bool


@flax.struct.dataclass
class PPOState:
    """Everything one training run carries between updates (a vmappable pytree)."""

    step: jax.Array  # optimiser steps taken (one per minibatch)
    params: Any  # optimised: {"policy", "value"}
    opt_state: Any  # make_optimizer(inject=True) state; holds the learning rate
    norm: Any  # the policy's "norm" collection (π_ref uses the same)
    ref_params: Any  # π_ref's params, never optimised
    env: S.EnvState  # [B]
    obs_count: jax.Array  # running statistics of the features
    obs_mean: jax.Array
    obs_var: jax.Array
    beta: jax.Array  # KL coefficient (the adaptive controller's current value)
    hparams: dict  # traced {"beta": β₀, "clip_eps"}
    update: jax.Array
    rng: jax.Array


def policy_variables(state: PPOState) -> dict:
    """The policy's {"params", "norm"} (what a checkpoint of the trained policy holds)."""
    return {"params": state.params["policy"], "norm": state.norm}


def make_actor_critic(config, policy_model=None, from_ref: bool = False) -> ActorCritic:
    """ActorCritic from config.model (unless policy_model is given) and config.ppo.value_hidden."""
    policy = policy_model or make_policy(config.model, len(T.TASKS), len(R.EMBODIMENTS))
    return ActorCritic(policy, ValueNet(tuple(config.ppo.value_hidden)), running_norm=not from_ref)


def make_ppo_optimizer(config) -> optax.GradientTransformation:
    """clip_by_global_norm(ppo.max_grad_norm) → Adam(ε = ppo.adam_eps) without weight decay, the
    learning rate injected (set per state by ``make_init``), via ``train.state.make_optimizer``.

    Optional ``ppo.flat_optimizer`` (default False): the chain runs on one flat vector of all
    parameters (``optax.flatten``), a few fused kernels per step instead of some per leaf. Adam is
    elementwise, so only the clip's global norm is summed in another order (float rounding).
    """
    p = config.ppo
    steps = int(p.num_updates) * int(p.update_epochs) * int(p.num_minibatches)
    tx = make_optimizer(ml_collections.ConfigDict(dict(
        learning_rate=float(p.learning_rate), schedule="constant", warmup_steps=0, total_steps=steps,
        grad_clip=float(p.max_grad_norm), weight_decay=float(p.weight_decay), adam_eps=float(p.adam_eps))),
        inject=True)
    return optax.flatten(tx) if p.get("flat_optimizer", False) else tx


def make_init(config, model: ActorCritic, tx, ref_variables: dict | None = None) -> Callable:
    """Returns ``init(rng, hparams) -> PPOState``; the policy (and π_ref) start from
    ref_variables {"params", "norm"}, or from a random init when it is None."""
    env = make_ppo_env(config)

    def init(rng, hparams):
        k_pol, k_val, k_env, rng = jax.random.split(rng, 4)
        if ref_variables is None:
            ids = jnp.zeros((1,), jnp.int32)
            pol = model.policy.init(k_pol, jnp.zeros((1, OBS_DIM), jnp.float32), ids, ids)["params"]
            norm = running_norm(jnp.zeros((OBS_DIM,)), jnp.ones((OBS_DIM,)))
        else:
            pol, norm = ref_variables["params"], ref_variables["norm"]
        params = {"policy": pol, "value": model.value.init(k_val, jnp.zeros((1, VALUE_IN_DIM)))["params"]}
        beta = jnp.asarray(hparams["beta"], jnp.float32)
        return PPOState(step=jnp.zeros((), jnp.int32), params=params,
                        opt_state=set_learning_rate(tx.init(params), hparams["lr"]), norm=norm, ref_params=pol,
                        env=reset_envs(env, k_env), obs_count=jnp.asarray(1e-4, jnp.float32),
                        obs_mean=jnp.zeros((OBS_DIM,)), obs_var=jnp.ones((OBS_DIM,)), beta=beta,
                        hparams={"beta": beta, "clip_eps": jnp.asarray(hparams["clip_eps"], jnp.float32)},
                        update=jnp.zeros((), jnp.int32), rng=rng)

    return init


def current_beta(kl_config, state: PPOState) -> jax.Array:
    """β of this update: hparams β₀ (fixed), its geometric anneal (annealed), or the controller's."""
    if kl_config.schedule == "fixed":
        return state.hparams["beta"]
    if kl_config.schedule == "annealed":
        return K.annealed_beta(state.update, kl_config.total_updates, state.hparams["beta"], kl_config.beta_end)
    return state.beta


def ppo_targets(env: PPOEnv, traj: dict, values, next_values, beta, *, estimator: str, gamma: float,
                lam: float) -> dict:
    """Training reward and GAE of a rollout; traj as ``ppo_rollout.rollout``, values and
    next_values [T, B] (V of the features before and after each step).

    reward = proxy − β·k(logp, ref_logp) − penalty, with k the KL estimator and penalty the
    safety constraints' in mode "penalty" (0 otherwise). The simulator only truncates, so
    every step is non-terminal and a cut episode bootstraps from V of its final observation.
    Returns {kl, penalty, reward, adv, targets}, each [T, B].
    """
    kl_step = K.kl_estimate(traj["logp"], traj["ref_logp"], estimator)
    if env.safety is not None and env.safety.mode == "penalty":
        penalty = constraint_penalty(env.safety, traj["viol"])
    else:
        penalty = jnp.zeros_like(kl_step)
    reward = traj["proxy"] - beta * kl_step - penalty
    adv, targets = L.gae(reward, values, next_values, jnp.zeros_like(traj["done"]), traj["done"], gamma, lam)
    return {"kl": kl_step, "penalty": penalty, "reward": reward, "adv": adv, "targets": targets}


def scale_gradient(tree, scale):
    """``tree`` unchanged in value, its gradient multiplied by ``scale`` (0 or 1: exact)."""
    return jax.tree.map(lambda x: scale * x + (1.0 - scale) * jax.lax.stop_gradient(x), tree)


def ppo_minibatch_loss(model: ActorCritic, ppo_config, env: PPOEnv, norm, clip_eps, params, mb, policy_active=1.0):
    """(loss, metrics) of ``losses.ppo.ppo_loss`` on a minibatch mb of N transitions {feats
    [N, D], task [N], action [N, A], logp, adv, targets, values [N], vin [N, VALUE_IN_DIM]}.
    policy_active = 0 stops the policy's gradient (value warm-up); the value still learns."""
    p = ppo_config
    policy_params = scale_gradient(params["policy"], policy_active)
    mean, log_std = model.policy.apply({"params": policy_params, "norm": norm}, mb["feats"], mb["task"],
                                       jnp.full_like(mb["task"], env.emb_id))
    mask = env.act_mask[:1]
    logp = action_log_prob(mean, log_std, mb["action"], mask, squash=model.policy.squash)
    v = model.value.apply({"params": params["value"]}, mb["vin"])
    adv = L.normalize_advantages(mb["adv"]) if p.normalize_advantages else mb["adv"]
    return L.ppo_loss(logp, mb["logp"], adv, v, mb["values"], mb["targets"], L.gaussian_entropy(log_std, mask),
                      clip_eps=clip_eps, vf_clip=p.vf_clip, vf_coef=p.vf_coef, ent_coef=p.ent_coef)


# How an epoch's minibatches are cut from the batch: "copy" gathers the whole permuted batch, then
# scans over its slices; "index" scans over slices of the permutation and gathers each minibatch
# inside the step (no permuted copy of the batch is written). Same minibatches, same results.
MINIBATCH_LAYOUTS = ("copy", "index")


def ppo_epochs(loss_fn: Callable, tx, state: TrainState, batch: dict, key, epochs: int, num_minibatches: int,
               layout: str = "copy"):
    """``epochs`` passes over batch (leaves [N, ...]), each a fresh permutation cut into
    ``num_minibatches`` minibatches, one ``apply_gradients`` step each (``layout``: one of
    ``MINIBATCH_LAYOUTS``, a memory-traffic choice that leaves every minibatch as it is).

    loss_fn(params, minibatch) -> (loss, metrics). Returns (state, metrics [epochs, num_minibatches]).
    """
    if layout not in MINIBATCH_LAYOUTS:
        raise ValueError(f"minibatch layout must be one of {MINIBATCH_LAYOUTS}, got {layout!r}")
    n = jax.tree.leaves(batch)[0].shape[0]

    def minibatch_step(state, mb):
        if layout == "index":  # mb holds the minibatch's rows of the batch
            mb = jax.tree.map(lambda x: x[mb], batch)
        (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, mb)
        return apply_gradients(state, tx, grads, metrics)

    def epoch(state, k):
        perm = jax.random.permutation(k, n)
        if layout == "index":
            return jax.lax.scan(minibatch_step, state, perm.reshape(num_minibatches, -1))
        mbs = jax.tree.map(lambda x: x[perm].reshape((num_minibatches, -1) + x.shape[1:]), batch)
        return jax.lax.scan(minibatch_step, state, mbs)

    return jax.lax.scan(epoch, state, jax.random.split(key, epochs))


def make_ppo_update(config, model: ActorCritic, tx: optax.GradientTransformation) -> Callable:
    """Returns the pure ``update(state, traj) -> (state, metrics)`` of one PPO update.

    traj: the batch, one ``ppo_rollout.rollout`` of the state's policy (leaves [T, B, ...]);
    config: ppo {gamma, gae_lambda, update_epochs, num_minibatches, normalize_advantages,
    vf_clip, vf_coef, ent_coef, optional value_warmup_updates and minibatch_layout}, kl {estimator,
    schedule, target, horizon, beta_end, total_updates}, env, optional safety. The state's env is
    left as it is (the rollout's).
    metrics: the loss metrics averaged over all minibatch steps (``ppo/*``, grad_norm,
    param_norm, update_norm) and ``ppo_rollout.rollout_metrics``.
    """
    env, p, kc = make_ppo_env(config), config.ppo, config.kl
    if (env.num_envs * env.num_steps) % int(p.num_minibatches):  # the rest of the config: validate_ppo_config
        raise ConfigError(describe("config", "ppo.num_minibatches", "a divisor of ppo.num_envs * ppo.num_steps = "
                                   f"{env.num_envs * env.num_steps}", p.num_minibatches))

    def update(state: PPOState, traj: dict):
        beta = current_beta(kc, state)
        vin = value_inputs(env, state.obs_mean, state.obs_var, traj["feats"], traj["t"])
        vin_next = value_inputs(env, state.obs_mean, state.obs_var, traj["next_feats"], traj["t"] + 1)
        value = lambda x: model.value.apply({"params": state.params["value"]}, x)
        values = value(vin)
        tg = ppo_targets(env, traj, values, value(vin_next), beta, estimator=kc.estimator, gamma=p.gamma,
                         lam=p.gae_lambda)
        batch = {"feats": traj["feats"], "action": traj["action"], "logp": traj["logp"], "adv": tg["adv"],
                 "targets": tg["targets"], "values": values, "vin": vin,
                 "task": jnp.broadcast_to(env.task_ids, traj["done"].shape)}
        batch = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), batch)
        # Value warm-up: the first updates fit V to the reward before the policy moves, so early
        # advantages are not dominated by an untrained critic.
        active = (state.update >= int(p.get("value_warmup_updates", 0))).astype(jnp.float32)
        loss_fn = lambda params, mb: ppo_minibatch_loss(model, p, env, state.norm, state.hparams["clip_eps"],
                                                        params, mb, active)
        k_epochs = jax.random.fold_in(jax.random.fold_in(state.rng, state.update), 1)
        opt = TrainState(step=state.step, params=state.params, norm=state.norm, opt_state=state.opt_state,
                         rng=k_epochs)
        opt, loss_m = ppo_epochs(loss_fn, tx, opt, batch, k_epochs, int(p.update_epochs), int(p.num_minibatches),
                                 p.get("minibatch_layout", "copy"))
        metrics = {k: v.mean() for k, v in loss_m.items()}
        metrics.update(rollout_metrics(env, traj, tg["kl"], tg["penalty"], beta))
        new_beta = beta
        if kc.schedule == "adaptive":
            new_beta = K.adaptive_beta(beta, metrics["kl"], kc.target, env.num_steps * env.num_envs, kc.horizon)
        count, mean, var = merge_stats(state.obs_count, state.obs_mean, state.obs_var,
                                       traj["feats"].reshape(-1, OBS_DIM))
        state = state.replace(step=opt.step, params=opt.params, opt_state=opt.opt_state,
                              norm=running_norm(mean, var) if model.running_norm else state.norm,
                              obs_count=count, obs_mean=mean, obs_var=var, beta=new_beta, update=state.update + 1)
        return state, metrics

    return update


def make_train_step(config, model: ActorCritic, tx, reward_fn: Callable) -> Callable:
    """Returns ``train_step(state) -> (state, metrics)``: a rollout of the state's policy, then
    ``make_ppo_update`` on it."""
    env, update = make_ppo_env(config), make_ppo_update(config, model, tx)

    def train_step(state: PPOState):
        state, traj = collect_rollout(env, model, reward_fn, state)
        return update(state, traj)

    return train_step


def collect_rollout(env: PPOEnv, model: ActorCritic, reward_fn: Callable, state: PPOState):
    """(state with the environments stepped, traj) of one ``ppo_rollout.rollout`` of the state's
    policy (π_ref = the state's ref_params); the key is folded from the state's rng and update."""
    ref_vars = {"params": state.ref_params, "norm": state.norm}
    key = jax.random.fold_in(state.rng, state.update)
    env_state, traj = rollout(env, model.policy, reward_fn, policy_variables(state), ref_vars, state.env, key)
    return state.replace(env=env_state), traj


def make_ppo(config, reward_fn: Callable, ref_variables: dict | None = None, policy_model=None):
    """(init(rng, hparams) -> PPOState, train_step(state) -> (state, metrics)) from a config.

    config as ``configs/ppo.py``; ref_variables: π_ref's {"params", "norm"}, the policy starts
    from them. None: the policy starts from a random init and π_ref is that init (KL then
    measures drift from it). policy_model: the policy module (default: from config.model).
    """
    model = make_actor_critic(config, policy_model, from_ref=ref_variables is not None)
    tx = make_ppo_optimizer(config)
    return make_init(config, model, tx, ref_variables), make_train_step(config, model, tx, reward_fn)


def make_train(config, reward_fn: Callable, ref_variables: dict | None = None, policy_model=None):
    """Returns the pure ``train(rng, hparams) -> (PPOState, metrics [num_updates])`` (one scan)."""
    init, train_step = make_ppo(config, reward_fn, ref_variables, policy_model)

    def train(rng, hparams):
        return jax.lax.scan(lambda s, _: train_step(s), init(rng, hparams), None, length=int(config.ppo.num_updates))

    return train


def default_hparams(config) -> dict:
    """{"beta", "clip_eps", "lr"} scalar arrays from config.ppo / config.kl."""
    return {"beta": jnp.asarray(config.kl.beta, jnp.float32),
            "clip_eps": jnp.asarray(config.ppo.clip_eps, jnp.float32),
            "lr": jnp.asarray(config.ppo.learning_rate, jnp.float32)}


def runner_shardings(state, mesh):
    """Shardings for a PPO state (or its ``jax.eval_shape``): every array of ``state.env``
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

    return jax.tree_util.tree_map_with_path(spec, state)


def shard_update(step: Callable, mesh, state_like):
    """Data-parallel PPO: environments split over the mesh's "data" axis, the rest replicated.

    ``step(state) -> (state, metrics)`` may be one training step or a scanned chunk of them;
    ``state_like`` is a state or its ``jax.eval_shape``. Returns (jitted step, state
    shardings): create the state with ``jax.jit(init, out_shardings=shardings)`` (or place one
    with ``jax.device_put``). Rollouts, GAE and the loss run on each device's environments; XLA
    inserts the cross-device reductions of the minibatch gradients and statistics (no pmean: a
    replicated parameter's gradient is already global).
    """
    from rlhf_jax.sharding import replicated

    shardings = runner_shardings(state_like, mesh)
    return jax.jit(step, in_shardings=(shardings,), out_shardings=(shardings, replicated(mesh))), shardings
