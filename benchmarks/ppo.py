"""Throughput of the simulator and of the PPO-RLHF loop (JSON via benchmarks.common).

  python -m benchmarks.ppo [--envs 2048] [--out benchmarks/results/ppo.json]

raw: env-steps/s of vmapped reset+step under lax.scan with random actions (no policy).
ppo: env-steps/s of full updates (policy + π_ref + reward-model ensemble + GAE + PPO epochs).
reward share: the same loop with the gold reward in place of the learned one; the time
difference is the reward model's inference share.
fraction_of_matmul_peak: model FLOPs per env-step (flops_per_env_step, from the networks) ×
env-steps/s against the measured f32 matmul rate; the profile times the rollouts alone.
"""
from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp

from benchmarks.common import dense_macs, machine_info, matmul_peak_gflops, time_call, use_compilation_cache, write_json
from configs.ppo import get_config
from rlhf_jax.train.reward import build_learned_reward
from rlhf_jax.envs import robots as R
from rlhf_jax.envs import simulator as S
from rlhf_jax.train import ppo
from rlhf_jax.models.reward_inference import gold_reward_fn
from rlhf_jax.train.ppo_rollout import make_ppo_env, rollout


def raw_env_rate(n_envs: int, n_steps: int = 50) -> float:
    robot = R.ROBOTS["panda"]
    qd_max = jnp.asarray(robot.qd_max)

    @jax.jit
    def run(key):
        state = jax.vmap(lambda k: S.reset_state(robot, 0, k))(jax.random.split(key, n_envs))

        def body(s, k):
            a = jax.random.uniform(k, (n_envs, robot.dof), minval=-1, maxval=1) * qd_max
            s, _, rc, _ = jax.vmap(lambda s, a: S.step_state(robot, 0.05, 50, False, s, a))(s, a)
            return s, rc.sum()

        return jax.lax.scan(body, state, jax.random.split(key, n_steps))[1]

    jax.block_until_ready(run(jax.random.key(0)))
    return n_envs * n_steps / time_call(run, jax.random.key(1))


def ppo_rate(config, reward_fn, chunk: int = 2) -> tuple[float, ppo.PPOState]:
    init, train_step = ppo.make_ppo(config, reward_fn)
    step = jax.jit(lambda s: jax.lax.scan(lambda s, _: train_step(s), s, None, length=chunk))
    state = jax.jit(init)(jax.random.key(0), ppo.default_hparams(config))
    jax.block_until_ready(step(state))
    return chunk * config.ppo.num_envs * config.ppo.num_steps / time_call(step, state, repeats=2), state


def rollout_rate(config, reward_fn, state, chunk: int = 2) -> float:
    """env-steps/s of the rollouts alone (policy, π_ref and reward model; no update)."""
    env, model = make_ppo_env(config), ppo.make_actor_critic(config)

    def one(s, _):
        ref_vars = {"params": s.ref_params, "norm": s.norm}
        env_state, traj = rollout(env, model.policy, reward_fn, ppo.policy_variables(s), ref_vars, s.env,
                                  jax.random.fold_in(s.rng, s.update))
        return s.replace(env=env_state, update=s.update + 1), traj["logp"].sum()

    run = jax.jit(lambda s: jax.lax.scan(one, s, None, length=chunk))
    jax.block_until_ready(run(state))
    return chunk * config.ppo.num_envs * config.ppo.num_steps / time_call(run, state, repeats=2)


def flops_per_env_step(config, state, reward_variables) -> dict:
    """Model FLOPs per environment step, from the networks (2 × Dense MACs per row; × 3 for a
    forward + backward pass): the rollout runs the policy, π_ref and the reward ensemble once;
    the update runs the value net on (s, s') once, then update_epochs passes of policy + value
    forward and backward over every sample."""
    policy, value = dense_macs(state.params["policy"]), dense_macs(state.params["value"])
    ref, reward = dense_macs(state.ref_params), dense_macs(reward_variables["params"])
    rollout_flops = 2 * (policy + ref + reward)
    update_flops = 2 * 2 * value + int(config.ppo.update_epochs) * 3 * 2 * (policy + value)
    return {"policy_macs": policy, "value_macs": value, "ref_macs": ref, "reward_ensemble_macs": reward,
            "rollout_flops": rollout_flops, "update_flops": update_flops, "total_flops": rollout_flops + update_flops}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--envs", type=int, default=2048)
    ap.add_argument("--out", default="benchmarks/results/ppo.json")
    args = ap.parse_args()
    use_compilation_cache()
    c = get_config("quick")
    c.ppo.num_envs, c.ppo.num_minibatches = args.envs, 8
    c.reward.fit_steps, c.reward.fit_episodes = 50, 8  # speed only: the fit's quality is irrelevant
    info = machine_info()  # before the run, so the load average is the machine's, not this benchmark's
    raw = raw_env_rate(args.envs)
    peak = matmul_peak_gflops()
    learned, _, reward_variables, _ = build_learned_reward(c.reward, "panda", ("reach",), jax.random.key(0))
    t_learned, state = ppo_rate(c, learned)
    t_gold, _ = ppo_rate(c, gold_reward_fn())
    t_rollout = rollout_rate(c, learned, state)
    flops = flops_per_env_step(c, state, reward_variables)
    gflops = flops["total_flops"] * t_learned / 1e9
    write_json(args.out, {
        "machine": info, "num_envs": args.envs, "ensemble_size": c.reward.ensemble_size,
        "matmul_peak_gflops": peak, "flops_per_env_step": flops, "gflops_per_s": gflops,
        "fraction_of_matmul_peak": gflops / peak,
        # Profile: the rollout alone against the whole loop (rollout + update).
        "rollout_env_steps_per_s": t_rollout, "rollout_share_of_time": t_learned / t_rollout,
        "rollout_gflops_per_s": flops["rollout_flops"] * t_rollout / 1e9,
        "raw_env_steps_per_s": raw, "ppo_rlhf_env_steps_per_s": t_learned,
        "ppo_gold_env_steps_per_s": t_gold, "ppo_fraction_of_raw": t_learned / raw,
        # (time per step with the model − without) / time per step with it
        "reward_model_time_share": max(0.0, 1.0 - t_learned / t_gold),
        "update_epochs": c.ppo.update_epochs, "num_minibatches": c.ppo.num_minibatches})


if __name__ == "__main__":
    main()
