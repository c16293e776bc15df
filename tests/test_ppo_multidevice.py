"""PPO updates with environments split over 8 forced CPU devices equal the 1-device updates."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent("""
    import sys
    import jax, jax.numpy as jnp, numpy as np
    from configs.ppo import get_config
    from rlhf_jax import rlhf_reward as RR
    from rlhf_jax.sharding import data_mesh
    from rlhf_jax.train import ppo

    assert len(jax.devices()) == int(sys.argv[2])
    c = get_config("quick")
    c.ppo.num_envs, c.ppo.num_steps, c.ppo.num_updates = 16, 10, 2
    init, update, _ = ppo.make_ppo(c, RR.gold_reward_fn())
    hp = ppo.default_hparams(c)
    runner = jax.jit(init)(jax.random.key(0), hp)
    step, runner = ppo.shard_update(update, runner, data_mesh())
    for _ in range(2):
        runner, metrics = step(runner, hp)
    leaves = jax.tree.leaves(runner.policy["params"]) + jax.tree.leaves(runner.value)
    np.savez(sys.argv[1], *[np.asarray(x) for x in leaves], q=np.asarray(runner.env.q),
             gold=np.asarray(metrics["gold_return"]), loss=np.asarray(metrics["ppo/loss"]))
""")


def _run(tmp_path, devices):
    out = str(tmp_path / f"ppo{devices}.npz")
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, out, str(devices)], env=env, cwd=root,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.load(out)


@pytest.mark.multidevice
def test_ppo_update_on_8_devices_equals_1_device(tmp_path):
    one, eight = _run(tmp_path, 1), _run(tmp_path, 8)
    for name in one.files:
        np.testing.assert_allclose(eight[name], one[name], rtol=1e-5, atol=1e-5, err_msg=name)
