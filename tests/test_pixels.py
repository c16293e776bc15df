"""Camera frames as reward-model inputs: frames rendered from stored states, stored once and gathered
per segment, the pixel reward models, and a pixels sweep point against the same point trained alone."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from experiments.stages import feature_kinds as FK
from experiments.stages.sweep import kind_inputs, train_points
from rlhf_jax.data import frames as Fr
from rlhf_jax.data.dataset import load_preference_data
from rlhf_jax.envs import simulator as S
from rlhf_jax.models.reward import PixelReward
from rlhf_jax.train import sweep
from rlhf_jax.train.state import make_optimizer
from rlhf_jax.train.sweep_data import make_sweep_data, with_frames

FRAME = 8  # tiny frames keep the compiled CNN cheap


@pytest.fixture(scope="module")
def pixel_pref(tiny_data_root, tiny_dataset_dir, tiny_episodes):
    del tiny_dataset_dir
    return load_preference_data("pixels_tiny", tiny_data_root, episodes=tiny_episodes, frame_size=FRAME,
                                n_train=200, n_val=40, n_test=40)


def test_frames_from_stored_states_are_the_simulators_camera():
    """What the simulator's own camera shows at a step equals the frame rendered from that step's observation."""
    env = S.make_env("ur5", "reach_avoid", image=True)
    state = env.reset(jax.random.PRNGKey(3))
    state, obs, _, _ = env.step(state, jnp.full((env.action_dim,), 0.3))
    stored = {k: np.asarray(v)[None] for k, v in obs.items()}
    rendered = Fr.render_steps("ur5", stored, env.action_dim, 64, "front")[0]
    np.testing.assert_array_equal(rendered, np.asarray(obs["image"]))


def test_segments_read_their_own_steps_frames_stored_once(pixel_pref, tiny_episodes):
    seg = pixel_pref.segments
    assert seg.frames.shape == (sum(len(ep["steps"]["reward"]) for ep in tiny_episodes), FRAME, FRAME, 3)
    assert seg.frames.dtype == np.uint8 and seg.frame_rows.shape == seg.obs.shape[:2]
    for i in (0, len(seg) // 2, len(seg) - 1):
        ep = tiny_episodes[seg.episode_index[i]]
        steps = np.arange(seg.start[i], seg.start[i] + seg.length)
        meta = ep["episode_metadata"]
        obs = {k: np.asarray(v)[steps] for k, v in ep["steps"]["observation"].items()}
        want = Fr.render_steps(meta["embodiment"], obs, int(meta["dof"]), FRAME, "front")
        np.testing.assert_array_equal(seg.frames[seg.frame_rows[i]], want)
    # with a margin the rows cover the margin steps too
    rows = Fr.segment_frame_rows(seg.start + 2, seg.episode_index, 2, seg.length + 4, np.zeros(len(tiny_episodes), int))
    np.testing.assert_array_equal(rows[:, 2:-2], Fr.segment_frame_rows(seg.start + 2, seg.episode_index, 0,
                                                                         seg.length, np.zeros(len(tiny_episodes), int)))


def test_pixels_reads_no_state_and_proprio_reads_no_scene(pixel_pref):
    """pixels: the return does not move when the state features do; pixels_proprio: it moves with q/qd but
    not with the goal/obstacle/box columns (those are only in the frames)."""
    seg = pixel_pref.segments
    obs, act = jnp.asarray(seg.obs[:4]), jnp.asarray(seg.act[:4])
    img = jnp.asarray(seg.frames[seg.frame_rows[:4, ::2]])
    task, emb = jnp.asarray(seg.task_id[:4]), jnp.asarray(seg.embodiment_id[:4])
    scene = obs.at[..., FK.PROPRIO_DIM:].add(3.0)
    joints = obs.at[..., :FK.PROPRIO_DIM].add(3.0)
    for proprio in (False, True):
        model = PixelReward(num_tasks=4, num_embodiments=3, hidden=(8,), channels=(4,), every=2, proprio=proprio,
                            proprio_dim=FK.PROPRIO_DIM)
        v = model.init(jax.random.PRNGKey(0), obs, act, task, emb, img)
        ret = lambda o: model.apply(v, o, act, task, emb, img)[0]  # noqa: E731
        np.testing.assert_array_equal(ret(scene), ret(obs))
        assert np.array_equal(ret(joints), ret(obs)) != proprio
        assert ret(obs).shape == (4,)


def test_patch_encoder_layers_are_2x2_stride_2_convolutions():
    """Each PatchEncoder layer equals lax.conv with a 2x2 kernel at stride 2 (the dense kernel read as
    [kh, kw, in, out]) plus its bias, then ReLU."""
    from rlhf_jax.models.encoders import PatchEncoder

    img = jax.random.randint(jax.random.PRNGKey(0), (3, 8, 8, 3), 0, 256).astype(jnp.uint8)
    enc = PatchEncoder(channels=(5,), out_dim=2)
    v = enc.init(jax.random.PRNGKey(1), img)
    p = v["params"]
    x = img.astype(jnp.float32) / 255.0 - 0.5
    kernel = p["Dense_0"]["kernel"].reshape(2, 2, 3, 5)
    conv = jax.lax.conv_general_dilated(x, kernel, (2, 2), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    hidden = jax.nn.relu(conv + p["Dense_0"]["bias"]).mean(axis=(1, 2))
    want = hidden @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]
    np.testing.assert_allclose(enc.apply(v, img), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="2x2 patches"):
        PatchEncoder(channels=(4, 4)).init(jax.random.PRNGKey(1), jnp.zeros((1, 6, 6, 3), jnp.uint8))


def _config():
    c = ml_collections.ConfigDict(dict(
        seed=0, batch_size=8, total_steps=6, eval_every=3, chunk_steps=6, eval_schedule="linear", bootstrap=True,
        point_groups=1, num_tasks=4, num_embodiments=3, model_sizes=((8,),), feature_kind="pixels", feature_kinds=(),
        model=dict(kind="markovian", context_dim=4, aggregate="sum", compute_dtype="float32"),
        pixels=dict(size=FRAME, view="front", every=2, cnn_sizes=((4,),)),
        optimizer=dict(learning_rate=3e-3, schedule="constant", warmup_steps=0, weight_decay=0.0, grad_clip=1.0),
        loss=dict(margin=0.0, label_smoothing=0.0, center_coef=1e-3)))
    return c


@pytest.mark.parametrize("kind, encoder", [("pixels", "patch"), ("pixels_proprio", "conv")])
def test_a_pixels_sweep_point_equals_the_same_point_trained_alone(pixel_pref, kind, encoder):
    config = _config()
    config.pixels.encoder = encoder
    sized = FK.SizedModel(kind, (8,), (4,), kind)
    model = FK.build_model(config, sized)
    tx = make_optimizer(config.optimizer, total_steps=config.total_steps)

    def run(n_values, seeds):
        inputs = with_frames(make_sweep_data(pixel_pref, ("oracle",), n_values, seeds, members=2), pixel_pref, 2)
        states, history, data = train_points(config, inputs, model, tx, log=lambda *_: None)
        test = sweep.make_segment_scorer(model)(states.best_params, inputs.norm, data, jnp.asarray(inputs.test_rows))
        return inputs.grid, states, history, np.asarray(test)

    grid, states, history, test = run((25, 50), (0, 1))
    _, alone, alone_history, alone_test = run((50,), (1,))
    p = grid.points.index((0, 50, 1))
    np.testing.assert_allclose(test[p], alone_test[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(history["loss"][:, p], alone_history["loss"][:, 0], rtol=1e-4, atol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[p], b[0], rtol=1e-4, atol=1e-5),
                 states.best_params, alone.best_params)
    assert not np.allclose(test[p], test[grid.points.index((0, 25, 1))])  # the points are not all one model


def test_state_kinds_train_without_frames(pixel_pref):
    inputs = with_frames(make_sweep_data(pixel_pref, ("oracle",), (25,), (0,), members=1), pixel_pref, 3)
    assert inputs.data.seg_frames.shape == (len(pixel_pref.segments), -(-pixel_pref.segments.length // 3))
    assert "image" in sweep.gather_segments(inputs.data, jnp.arange(2))
    state = kind_inputs(inputs, "joint")
    assert state.data.frames is None and "image" not in sweep.gather_segments(state.data, jnp.arange(2))
    assert kind_inputs(inputs, "pixels") is inputs


def test_sized_models_sweep_the_cnn_sizes_of_pixel_kinds_only():
    config = _config()
    config.feature_kinds = ("joint", "pixels")
    config.pixels.cnn_sizes = ((4,), (4, 8))
    labels = [s.label for s in FK.sized_models(config)]
    assert labels == ["joint_8", "pixels_cnn4_8", "pixels_cnn4x8_8"]
    assert FK.table_kind(config) == "joint" and FK.has_pixels(config)


def test_the_sweep_job_trains_state_and_pixels_on_the_same_pairs(tiny_data_root, tiny_dataset_dir, tmp_path):
    """configs/scaling_sweep.py with feature_kinds: a features column, one fit per shape, reward-model
    artefacts of the state kind only, and the pixels report renders from the results."""
    import csv
    import json
    import os

    from configs.scaling_sweep import get_config
    from experiments import pixels_report
    from experiments.stages.sweep import run_sweep

    del tiny_dataset_dir
    c = get_config("tiny")
    c.data_dir, c.feature_kinds, c.seeds, c.members = tiny_data_root, ("joint", "pixels"), (0,), 1
    c.n_values, c.total_steps, c.chunk_steps, c.eval_every = (25, 50, 100), 20, 20, 10
    c.pixels.size, c.pixels.every, c.pixels.cnn_sizes = FRAME, 2, ((4,),)
    c.fit.n_bootstrap = 5
    workdir = str(tmp_path / "run")
    fits = run_sweep(c, workdir, log=lambda *_: None)
    shapes = ("joint_64x64", "pixels_cnn4_64x64")
    assert set(fits) == {f"oracle/{k}/{s}" for k in ("ensemble", "single") for s in shapes}
    with open(os.path.join(workdir, "results.csv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {(r["features"], r["model_size"]) for r in rows} == set(zip(("joint", "pixels"), shapes))
    pairs = {k: sorted((r["n"], r["seed"], r["usable_pairs"]) for r in rows if r["features"] == k)
             for k in ("joint", "pixels")}
    assert pairs["joint"] == pairs["pixels"]
    with open(os.path.join(workdir, "run_info.json"), encoding="utf-8") as f:
        info = json.load(f)
    saved = info["reward_models"]
    assert len(saved) == 3 and all("size" not in p for p in saved)  # the joint kind's 3 N values
    assert info["frames_mib"] == pytest.approx(2880 * FRAME * FRAME * 3 / 2**20)  # tiny: 144 episodes x 20 steps
    with open(os.path.join(workdir, "results.csv"), encoding="utf-8") as f:
        block = pixels_report.docs_block(pixels_report.read_rows(f), workdir, benchmark={})
    assert "| pixels | pixels_cnn4_64x64 |" in block and "state accuracy at N = 100" in block
