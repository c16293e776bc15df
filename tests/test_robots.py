"""Forward kinematics and Jacobians of the three arms against independent references."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlhf_jax.envs import robots as R


# ---- independent NumPy DH reference, written from the textbook definitions ----
def _rot_x(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1.0]])


def _rot_z(t):
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])


def _trans(x=0.0, y=0.0, z=0.0):
    m = np.eye(4)
    m[:3, 3] = (x, y, z)
    return m


def numpy_fk(robot, q):
    """Flange position [3] by chaining 4x4 homogeneous transforms in the robot's convention."""
    t = _trans(*robot.base_pos)
    for (a, d, alpha, off), j in zip(robot.dh, robot.joint_index):
        theta = off + (q[j] if j >= 0 else 0.0)
        if robot.convention == "standard":  # Rz(theta) Tz(d) Tx(a) Rx(alpha)
            t = t @ _rot_z(theta) @ _trans(z=d) @ _trans(x=a) @ _rot_x(alpha)
        elif robot.convention == "modified":  # Rx(alpha_{i-1}) Tx(a_{i-1}) Rz(theta) Tz(d)
            t = t @ _rot_x(alpha) @ _trans(x=a) @ _rot_z(theta) @ _trans(z=d)
        else:
            raise ValueError(robot.convention)
    return t[:3, 3]


def _reference_configs(robot):
    qs = [np.zeros(robot.dof), robot.q_home, robot.q_min * 0.9, robot.q_max * 0.9]
    qs += list(R.random_configurations(robot, 6, seed=1))
    return np.clip(np.stack(qs), robot.q_min, robot.q_max)


N_RANDOM = 20000


@functools.lru_cache(maxsize=None)
def _results(name):
    """One compiled program per arm: FK, analytic and autodiff Jacobians of the reference
    configurations followed by N_RANDOM random in-limit ones. Returns numpy arrays."""
    robot = R.ROBOTS[name]

    def all_of(q):
        frames, eef = R.forward_kinematics(robot, q)
        jac = R.position_jacobian(robot, q)
        jac_ad = jax.jacfwd(lambda x: R.forward_kinematics(robot, x)[1])(q)
        return frames, eef, jac, jac_ad

    qs = np.concatenate([_reference_configs(robot), R.random_configurations(robot, N_RANDOM)])
    out = jax.jit(jax.vmap(all_of))(jnp.asarray(qs, jnp.float32))
    return qs, [np.asarray(x) for x in out]


def test_conventions_and_shapes():
    assert R.EMBODIMENTS == ("panda", "ur5", "gen3")
    assert R.ROBOTS["panda"].convention == "modified"
    assert R.ROBOTS["ur5"].convention == "standard"
    assert R.ROBOTS["gen3"].convention == "standard"
    for name, robot in R.ROBOTS.items():
        assert robot.dof <= R.MAX_DOF
        assert robot.dh.shape[1] == 4
        for arr in (robot.q_min, robot.q_max, robot.qd_max, robot.q_home):
            assert arr.shape == (robot.dof,)
        assert np.all(robot.q_min < robot.q_home) and np.all(robot.q_home < robot.q_max)
        frames, eef = R.forward_kinematics(robot, robot.q_home)
        assert frames.shape == (robot.n_frames, 3) and eef.shape == (3,)


@pytest.mark.parametrize("name", R.EMBODIMENTS)
def test_fk_matches_numpy_dh(name):
    robot = R.ROBOTS[name]
    qs, (frames, eef, _, _) = _results(name)
    n = len(_reference_configs(robot))
    ref = np.stack([numpy_fk(robot, q) for q in qs[:n]])
    np.testing.assert_allclose(eef[:n], ref, atol=2e-5)
    np.testing.assert_allclose(frames[:n, -1], ref, atol=2e-5)


def test_fk_zero_pose_known_values():
    # Hand-derived flange positions at q = 0 (from the published link lengths):
    # Panda: x = a7, z = d1 + d3 + d5 - d_flange (wrist points down).
    # UR5: stretched along -x, wrist offsets d4 + d6 along -y, z = d1 - d5.
    # Gen3: straight up; the small lateral offsets sum to -0.0246 m in y.
    expected = {
        "panda": [0.088, 0.0, 0.333 + 0.316 + 0.384 - 0.107],
        "ur5": [-(0.425 + 0.39225), -(0.10915 + 0.0823), 0.089159 - 0.09465],
        "gen3": [0.0, -0.0246, 0.2848 + 0.4208 + 0.3143 + 0.1674],
    }
    for name, want in expected.items():
        robot = R.ROBOTS[name]
        _, eef = R.forward_kinematics(robot, np.zeros(robot.dof))
        np.testing.assert_allclose(np.asarray(eef), want, atol=1e-5)


@pytest.mark.parametrize("name", R.EMBODIMENTS)
def test_analytic_jacobian_equals_jacfwd(name):
    robot = R.ROBOTS[name]
    _, (_, _, jac, jac_ad) = _results(name)
    assert jac.shape[1:] == (3, robot.dof)
    np.testing.assert_allclose(jac[:500], jac_ad[:500], atol=1e-5)


# (frame the published reach refers to, relative tolerance).  Panda and Gen3 publish the
# shoulder-to-flange distance.  UR's 850 mm is a conservative working radius: the
# shoulder-to-wrist-1 distance a2 + a3 = 0.817 m is within 4 %, while the flange sticks out a
# further d5 + d6 (~0.13 m, max shoulder-flange distance 0.95 m), so UR5 is checked at the wrist and
# the flange is only bounded.
_REACH_CHECK = {"panda": (-1, 0.02), "ur5": (3, 0.05), "gen3": (-1, 0.02)}


@pytest.mark.parametrize("name", R.EMBODIMENTS)
def test_max_reach_close_to_published(name):
    robot = R.ROBOTS[name]
    _, (frames, _, _, _) = _results(name)
    shoulder = frames[:, robot.axis_frames[robot.shoulder_joint]]
    frame, tol = _REACH_CHECK[name]
    dist = np.linalg.norm(frames[:, frame] - shoulder, axis=1).max()
    assert abs(dist - robot.reach) <= tol * robot.reach, (name, dist, robot.reach)
    flange = np.linalg.norm(frames[:, -1] - shoulder, axis=1).max()
    assert robot.reach * 0.98 <= flange <= robot.reach * 1.15, (name, flange)


def test_link_points_cover_the_arm():
    for robot in R.ROBOTS.values():
        frames, eef = R.forward_kinematics(robot, robot.q_home)
        pts = R.link_points(robot, frames)
        assert pts.shape[1] == 3 and pts.shape[0] >= 8
        np.testing.assert_allclose(np.asarray(pts[-1]), np.asarray(eef), atol=1e-6)
        # consecutive samples never further apart than the spacing (plus rounding)
        gaps = np.linalg.norm(np.diff(np.asarray(pts), axis=0), axis=1)
        assert gaps.max() <= R.LINK_SPACING + 1e-5
