"""PPO updates with environments split over 8 forced CPU devices equal the 1-device updates."""
import textwrap

import numpy as np
import pytest

from tests.subprocess_utils import python_script, run_checked, subprocess_env

SCRIPT = textwrap.dedent("""
    import sys
    import jax, jax.numpy as jnp, numpy as np
    from configs.ppo import get_config
    from rlhf_jax.sharding import data_mesh
    from rlhf_jax.train import ppo
    from rlhf_jax.models.reward_inference import gold_reward_fn

    assert len(jax.devices()) == int(sys.argv[2])
    c = get_config("quick")
    c.ppo.num_envs, c.ppo.num_steps, c.ppo.num_updates = 16, 10, 2
    init, train_step = ppo.make_ppo(c, gold_reward_fn())
    hp = ppo.default_hparams(c)
    mesh = data_mesh()
    key = jax.random.key(0)
    step, shardings = ppo.shard_update(train_step, mesh, jax.eval_shape(init, key, hp))
    if sys.argv[3] == "created":
        # As the experiment does it: the state comes out of init already placed.
        state = jax.jit(init, out_shardings=shardings)(key, hp)
        assert state.env.q.sharding.spec[0] == "data", state.env.q.sharding
        params = jax.tree.leaves(state.params["policy"])
        assert all(len(p.sharding.device_set) == len(jax.devices()) and p.sharding.is_fully_replicated
                   for p in params)
    else:
        state = jax.device_put(jax.jit(init)(key, hp), shardings)
    for _ in range(2):
        state, metrics = step(state)
    leaves = jax.tree.leaves(state.params)
    np.savez(sys.argv[1], *[np.asarray(x) for x in leaves], q=np.asarray(state.env.q),
             gold=np.asarray(metrics["gold_return"]), loss=np.asarray(metrics["ppo/loss"]))
""")


def _run(tmp_path, devices, placement="placed"):
    out = str(tmp_path / f"ppo{devices}{placement}.npz")
    run_checked(python_script(SCRIPT, out, str(devices), placement), subprocess_env(devices))
    return np.load(out)


@pytest.mark.slow
@pytest.mark.multidevice
def test_ppo_update_on_8_devices_equals_1_device(tmp_path):
    """Both ways of placing the runner: created sharded by init, and device_put after init."""
    one = _run(tmp_path, 1)
    for eight in (_run(tmp_path, 8, "created"), _run(tmp_path, 8, "placed")):
        for name in one.files:
            np.testing.assert_allclose(eight[name], one[name], rtol=1e-5, atol=1e-5, err_msg=name)


def test_runner_shardings_refuse_uneven_environments():
    """12 environments cannot split over 8 devices: the error names the config field."""
    import flax
    import jax

    from rlhf_jax.train import ppo

    @flax.struct.dataclass
    class Runner:
        env: dict

    class EightDeviceMesh:
        shape = {"data": 8}

    with pytest.raises(ValueError, match="ppo.num_envs: 12 environments"):
        ppo.runner_shardings(Runner(env={"q": jax.ShapeDtypeStruct((12, 7), np.float32)}), EightDeviceMesh())
