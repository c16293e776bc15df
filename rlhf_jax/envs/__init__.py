"""The JAX kinematic multi-embodiment simulator: arms, tasks, gold reward, scripted policies, and
the one rollout program (``unroll``)."""
from rlhf_jax.envs.policies import POLICIES, make_policy, rollout, success_rate
from rlhf_jax.envs.robots import (EMBODIMENTS, MAX_DOF, ROBOTS, Robot, forward_kinematics,
                                  position_jacobian)
from rlhf_jax.envs.simulator import (DEFAULT_RUBRIC, REWARD_COMPONENTS, VIOLATIONS, Env, EnvState,
                                     gold_reward, make_env)
from rlhf_jax.envs.tasks import INSTRUCTIONS, TASKS

__all__ = [
    "DEFAULT_RUBRIC", "EMBODIMENTS", "INSTRUCTIONS", "MAX_DOF", "POLICIES", "REWARD_COMPONENTS",
    "ROBOTS", "TASKS", "VIOLATIONS", "Env", "EnvState", "Robot", "forward_kinematics", "gold_reward",
    "make_env", "make_policy", "position_jacobian", "rollout", "success_rate",
]
