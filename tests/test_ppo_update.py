"""PPO's update pieces against slow references: targets, one update, hyper-parameters as state."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs.ppo import get_config
from rlhf_jax.envs.constraints import CONSTRAINTS
from rlhf_jax.losses import ppo as L
from rlhf_jax.models.policy import action_log_prob
from rlhf_jax.train import ppo
from rlhf_jax.train import ppo_rollout as PR
from rlhf_jax.models.reward_inference import gold_reward_fn


def tiny_config():
    c = get_config("quick")
    c.env.horizon = 6
    c.ppo.num_envs, c.ppo.num_steps, c.ppo.num_minibatches, c.ppo.update_epochs = 4, 8, 2, 2
    c.model.hidden = c.ppo.value_hidden = (16, 16)
    c.safety.weights = (0.5, 1.0, 2.0, 4.0)
    return c


def reference_targets(proxy, logp, ref_logp, viol, weights, values, next_values, done, beta, estimator,
                      gamma, lam):
    """Slow NumPy: reward = proxy − β·kl − Σ_k w_k v_k, then GAE one environment at a time."""
    log_ratio = logp - ref_logp
    kl = log_ratio if estimator == "k1" else np.exp(-log_ratio) - 1.0 + log_ratio
    reward = proxy - beta * kl - viol @ weights
    adv = np.zeros_like(reward)
    for j in range(reward.shape[1]):
        acc = 0.0
        for t in reversed(range(reward.shape[0])):
            delta = reward[t, j] + gamma * next_values[t, j] - values[t, j]  # never terminal
            acc = delta + gamma * lam * (0.0 if done[t, j] else acc)
            adv[t, j] = acc
    return reward, adv, adv + values


@pytest.mark.parametrize("estimator", ["k1", "k3"])
def test_targets_match_slow_reference(estimator):
    env = PR.make_ppo_env(tiny_config())
    rng = np.random.default_rng(1)
    shape = (9, 4)
    traj = {"proxy": rng.normal(size=shape), "logp": rng.normal(size=shape), "ref_logp": rng.normal(size=shape),
            "viol": (rng.random(shape + (len(CONSTRAINTS),)) < 0.3).astype(np.float32),
            "done": rng.random(shape) < 0.2}
    traj = {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in traj.items()}
    values, next_values = rng.normal(size=shape).astype(np.float32), rng.normal(size=shape).astype(np.float32)
    tg = jax.device_get(ppo.ppo_targets(env, {k: jnp.asarray(v) for k, v in traj.items()}, values, next_values,
                                        0.3, estimator=estimator, gamma=0.9, lam=0.8))
    reward, adv, targets = reference_targets(traj["proxy"], traj["logp"], traj["ref_logp"], traj["viol"],
                                             np.array([0.5, 1.0, 2.0, 4.0], np.float32), values, next_values,
                                             traj["done"], 0.3, estimator, 0.9, 0.8)
    np.testing.assert_allclose(tg["reward"], reward, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tg["adv"], adv, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(tg["targets"], targets, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(tg["penalty"], traj["viol"] @ np.array([0.5, 1.0, 2.0, 4.0]), rtol=1e-6)


def reference_update(c, model, state, traj, lr, clip_eps):
    """The update written out: clip + Adam(ε=1e-5) scaled by −lr, minibatches in Python loops."""
    p, env = c.ppo, PR.make_ppo_env(c)
    vin = PR.value_inputs(env, state.obs_mean, state.obs_var, traj["feats"], traj["t"])
    vin_next = PR.value_inputs(env, state.obs_mean, state.obs_var, traj["next_feats"], traj["t"] + 1)
    values = model.value.apply({"params": state.params["value"]}, vin)
    next_values = model.value.apply({"params": state.params["value"]}, vin_next)
    beta = float(state.hparams["beta"])
    _, adv, targets = reference_targets(*(np.asarray(traj[k]) for k in ("proxy", "logp", "ref_logp", "viol")),
                                        np.asarray(env.safety.weights, np.float32), np.asarray(values),
                                        np.asarray(next_values), np.asarray(traj["done"]), beta, c.kl.estimator,
                                        p.gamma, p.gae_lambda)
    flat = lambda x: jnp.reshape(jnp.asarray(x), (-1,) + jnp.shape(x)[2:])
    batch = {"feats": flat(traj["feats"]), "action": flat(traj["action"]), "logp": flat(traj["logp"]),
             "adv": flat(adv), "targets": flat(targets), "values": flat(values), "vin": flat(vin),
             "task": flat(jnp.broadcast_to(env.task_ids, traj["done"].shape))}

    def loss(params, mb):
        mean, log_std = model.policy.apply({"params": params["policy"], "norm": state.norm}, mb["feats"],
                                           mb["task"], jnp.full_like(mb["task"], env.emb_id))
        logp = action_log_prob(mean, log_std, mb["action"], env.act_mask[:1], squash=True)
        v = model.value.apply({"params": params["value"]}, mb["vin"])
        return L.ppo_loss(logp, mb["logp"], L.normalize_advantages(mb["adv"]), v, mb["values"], mb["targets"],
                          L.gaussian_entropy(log_std, env.act_mask[:1]), clip_eps=clip_eps, vf_clip=p.vf_clip,
                          vf_coef=p.vf_coef, ent_coef=p.ent_coef)[0]

    tx = optax.chain(optax.clip_by_global_norm(p.max_grad_norm), optax.scale_by_adam(eps=1e-5))
    params, opt = state.params, tx.init(state.params)
    n = batch["feats"].shape[0]
    k_epochs = jax.random.fold_in(jax.random.fold_in(state.rng, state.update), 1)

    @jax.jit  # one minibatch step, compiled once (op-by-op it dominates the test's time)
    def step(params, opt, mb):
        u, opt = tx.update(jax.grad(loss)(params, mb), opt, params)
        return optax.apply_updates(params, jax.tree.map(lambda g: -lr * g, u)), opt

    for k in jax.random.split(k_epochs, p.update_epochs):
        perm = jax.random.permutation(k, n)
        for i in range(p.num_minibatches):
            idx = perm.reshape(p.num_minibatches, -1)[i]
            params, opt = step(params, opt, jax.tree.map(lambda x: x[idx], batch))
    return params


@pytest.fixture(scope="module")
def one_update():
    c = tiny_config()
    model, tx = ppo.make_actor_critic(c), ppo.make_ppo_optimizer(c)
    hp = {"beta": jnp.float32(0.05), "clip_eps": jnp.float32(0.1), "lr": jnp.float32(3e-3)}  # not the config's
    state = jax.jit(ppo.make_init(c, model, tx))(jax.random.key(0), hp)
    env = PR.make_ppo_env(c)
    ref = {"params": state.ref_params, "norm": state.norm}
    rollout = jax.jit(lambda s, k: PR.rollout(env, model.policy, gold_reward_fn(), ppo.policy_variables(s), ref,
                                              s.env, k)[1])
    traj = rollout(state, jax.random.key(5))
    # Perturb π so the ratio, the KL term and the clipping all matter in the step.
    traj = dict(traj, logp=traj["logp"] + 0.2 * jnp.sin(jnp.arange(traj["logp"].size)).reshape(traj["logp"].shape))
    update = jax.jit(ppo.make_ppo_update(c, model, tx))
    new, metrics = update(state, traj)
    return c, model, state, traj, new, metrics, (rollout, update)


def test_update_equals_the_update_written_out(one_update):
    c, model, state, traj, new, _, _ = one_update
    want = reference_update(c, model, state, traj, lr=3e-3, clip_eps=0.1)
    for path, a, b in zip(jax.tree_util.tree_leaves_with_path(want), jax.tree.leaves(want), jax.tree.leaves(new.params)):
        np.testing.assert_allclose(b, a, rtol=2e-4, atol=2e-6, err_msg=jax.tree_util.keystr(path[0]))
    moved = sum(float(jnp.abs(a - b).max()) for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(new.params)))
    assert moved > 1e-3  # the comparison is not between two unchanged copies


def test_update_bookkeeping_and_metrics(one_update):
    c, _, state, traj, new, m, _ = one_update
    assert int(new.update) == 1 and int(new.step) == c.ppo.update_epochs * c.ppo.num_minibatches
    np.testing.assert_array_equal(new.ref_params["mean"]["kernel"], state.ref_params["mean"]["kernel"])
    count, mean, var = PR.merge_stats(state.obs_count, state.obs_mean, state.obs_var,
                                      traj["feats"].reshape(-1, PR.OBS_DIM))
    np.testing.assert_allclose(new.obs_mean, mean, rtol=1e-6)
    np.testing.assert_allclose(new.norm["obs_norm"]["obs_std"], np.sqrt(var + 1e-6), rtol=1e-6)  # from scratch
    np.testing.assert_allclose(m["kl"], np.mean(traj["logp"] - traj["ref_logp"]) * c.env.horizon, rtol=1e-5)
    np.testing.assert_allclose(m["beta"], 0.05)
    for k in ("grad_norm", "param_norm", "update_norm", "ppo/loss", "ppo/clip_fraction", "gold_return"):
        assert np.isfinite(m[k]), k
    assert m["ppo/clip_fraction"] > 0  # clip_eps = 0.1 from the state, not the config's 0.2


def test_learning_rate_lives_in_the_state_and_vmaps():
    c = tiny_config()
    c.ppo.num_updates = 1
    c.ppo.update_epochs = 1
    train = ppo.make_train(c, gold_reward_fn())
    hp = {"beta": jnp.zeros(2), "clip_eps": jnp.full(2, 0.2), "lr": jnp.asarray([0.0, 2e-3])}
    program = jax.jit(jax.vmap(train))  # one compile (~20 s here) serves every call below
    keys = jnp.stack([jax.random.key(0)] * 2)
    states, m = program(keys, hp)
    np.testing.assert_allclose(states.opt_state.hyperparams["learning_rate"], [0.0, 2e-3])
    # lr = 0: every applied update is exactly zero, so lane 0 keeps its initial parameters.
    assert float(m["update_norm"][1].min()) > 0 and float(m["update_norm"][0].max()) == 0.0
    # Each point depends only on its own hyper-parameters: with lane 0 switched to lane 1's lr,
    # both lanes reproduce lane 1 of the first call (same seed, same lr).
    both, _ = program(keys, dict(hp, lr=jnp.asarray([2e-3, 2e-3])))  # same dtype/weak type: no recompile
    for a, b in zip(jax.tree.leaves(both.params), jax.tree.leaves(states.params)):
        np.testing.assert_allclose(a[0], b[1], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a[1], b[1], rtol=1e-5, atol=1e-6)


def test_update_levers_give_the_same_update(one_update):
    """ppo.minibatch_layout "index" cuts the same minibatches as "copy": the new parameters are
    bit-identical (the metrics' reductions may fuse differently: rtol 1e-6). ppo.flat_optimizer
    runs Adam on one flat vector: only the clip's global norm sums in another order, so parameters
    agree to float rounding (rtol 1e-5). Three rollouts, not one lucky batch."""
    c, model, state, _, _, _, (rollout, base) = one_update
    c_index, c_flat = tiny_config(), tiny_config()
    c_index.ppo.minibatch_layout, c_flat.ppo.flat_optimizer = "index", True
    index = jax.jit(ppo.make_ppo_update(c_index, model, ppo.make_ppo_optimizer(c_index)))
    flat_tx = ppo.make_ppo_optimizer(c_flat)
    flat_state = state.replace(opt_state=flat_tx.init(state.params))
    flat_state = flat_state.replace(opt_state=flat_state.opt_state._replace(hyperparams=state.opt_state.hyperparams))
    flat = jax.jit(ppo.make_ppo_update(c_flat, model, flat_tx))
    for key in (3, 4, 5):
        batch = rollout(state, jax.random.key(key))
        want, want_m = base(state, batch)
        got, got_m = index(state, batch)
        for a, b in zip(jax.tree.leaves(want.params), jax.tree.leaves(got.params)):
            np.testing.assert_array_equal(a, b)
        for k in want_m:
            np.testing.assert_allclose(got_m[k], want_m[k], rtol=1e-6, err_msg=k)
        got, got_m = flat(flat_state, batch)
        for a, b in zip(jax.tree.leaves(want.params), jax.tree.leaves(got.params)):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(got_m["ppo/loss"], want_m["ppo/loss"], rtol=1e-5)
        moved = jnp.abs(want.params["value"]["Dense_0"]["kernel"] - state.params["value"]["Dense_0"]["kernel"])
        assert float(moved.max()) > 1e-4  # the comparison is not between two unchanged copies
