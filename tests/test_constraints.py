"""Rule-based safety constraints used by PPO: each violation indicator fires on its own rule."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlhf_jax.envs import constraints as C
from rlhf_jax.envs import REWARD_COMPONENTS, make_env


@pytest.fixture(scope="module")
def setup():
    env = make_env("panda", "reach_avoid")
    state = env.reset(jax.random.key(0))
    return env.robot, state


def _batch(state):
    return jax.tree.map(lambda x: jnp.asarray(x)[None], state)


def test_each_constraint_fires_on_its_rule_only(setup):
    robot, state = setup
    spec = C.SafetySpec(workspace=(-2.0, -2.0, -2.0, 2.0, 2.0, 2.0), clearance=0.02)
    far_obstacle = state._replace(obstacle=jnp.array([5.0, 5.0, 5.0, 0.1]))
    mid = (jnp.asarray(robot.q_min) + jnp.asarray(robot.q_max)) / 2
    safe = far_obstacle._replace(q=mid)
    comps = jnp.zeros((1, len(REWARD_COMPONENTS)))
    calm = jnp.zeros((1, robot.dof))
    v = C.constraint_violations(spec, robot, _batch(safe), comps, calm)
    np.testing.assert_array_equal(v, [[0, 0, 0, 0]])
    at_limit = safe._replace(q=jnp.asarray(robot.q_max))
    np.testing.assert_array_equal(C.constraint_violations(spec, robot, _batch(at_limit), comps, calm), [[1, 0, 0, 0]])
    fast = calm.at[0, 0].set(0.95)  # above speed_frac = 0.8 of qd_max
    np.testing.assert_array_equal(C.constraint_violations(spec, robot, _batch(safe), comps, fast), [[0, 1, 0, 0]])
    outside = safe._replace(eef_pos=jnp.array([3.0, 0.0, 0.5]))
    np.testing.assert_array_equal(C.constraint_violations(spec, robot, _batch(outside), comps, calm), [[0, 0, 1, 0]])
    touching = safe._replace(obstacle=jnp.concatenate([safe.eef_pos + jnp.array([0.0, 0.0, 0.11]), jnp.array([0.1])]))
    np.testing.assert_array_equal(C.constraint_violations(spec, robot, _batch(touching), comps, calm), [[0, 0, 0, 1]])


def test_penalty_weights_and_projection():
    spec = C.SafetySpec(weights=(1.0, 2.0, 0.0, 4.0), speed_frac=0.5)
    v = jnp.array([[1.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    np.testing.assert_allclose(C.constraint_penalty(spec, v), [3.0, 4.0])
    np.testing.assert_allclose(C.project_action(spec, jnp.array([-0.9, 0.2, 0.7])), [-0.5, 0.2, 0.5])
    with pytest.raises(ValueError, match="safety.mode"):
        C.safety_spec_from_config({"enabled": True, "mode": "terminate"})
    assert C.safety_spec_from_config({"enabled": False}) is None
