"""``model.compute_dtype``: bfloat16 matmuls with float32 accumulation in the reward models, the
float32 default unchanged, and bfloat16 as accurate as float32 within the seed spread."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs.scaling_sweep import get_config
from experiments.stages.sweep import train_one_size
from rlhf_jax.losses import preference_probability
from rlhf_jax.metrics import preference_metrics
from rlhf_jax.models.encoders import ContextEmbedding, Normalizer
from rlhf_jax.models.reward import MarkovianReward, make_reward_model, reward_model_from_config
from rlhf_jax.train.reward import make_reward_update
from rlhf_jax.train.state import TrainState, make_optimizer
from rlhf_jax.train.sweep_data import make_sweep_data

B, T, D, A = 6, 5, 9, 7
KINDS = {"markovian": {"hidden": (16, 16)}, "transformer": {"width": 16, "depth": 1, "heads": 2}}


def _segments(key):
    k1, k2, k3 = jax.random.split(key, 3)
    return {"obs": jax.random.normal(k1, (B, T, D)), "act": jax.random.normal(k2, (B, T, A)),
            "task": jax.random.randint(k3, (B,), 0, 4), "embodiment": jnp.arange(B) % 3}


def _apply(model, variables, seg):
    return model.apply(variables, seg["obs"], seg["act"], seg["task"], seg["embodiment"])


def _dot_types(jaxpr) -> list[tuple[tuple[str, ...], str]]:
    """(operand dtypes, output dtype) of every dot_general in a jaxpr, nested calls included."""
    out = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            out.append((tuple(str(v.aval.dtype) for v in eqn.invars), str(eqn.outvars[0].aval.dtype)))
        for param in eqn.params.values():
            inner = getattr(param, "jaxpr", param)
            if hasattr(inner, "eqns"):
                out += _dot_types(inner)
    return out


class PreOptionMarkovianReward(nn.Module):
    """MarkovianReward as written before ``compute_dtype`` existed (no image input): the
    reference the float32 default must match bit for bit."""

    num_tasks: int
    num_embodiments: int
    hidden: tuple = (16, 16)
    context_dim: int = 8

    @nn.compact
    def __call__(self, obs, act, task_id, embodiment_id):
        ctx = ContextEmbedding(self.num_tasks, self.num_embodiments, self.context_dim, name="context")(
            task_id, embodiment_id)
        x = jnp.concatenate([Normalizer("obs", name="obs_norm")(obs), Normalizer("act", name="act_norm")(act),
                             jnp.broadcast_to(ctx[..., None, :], obs.shape[:-1] + ctx.shape[-1:])], axis=-1)
        for width in self.hidden:
            x = nn.gelu(nn.Dense(width)(x))
        step_rewards = nn.Dense(1)(x)[..., 0]
        return jnp.sum(step_rewards, axis=-1), step_rewards


def test_float32_default_is_the_model_before_the_option_bit_for_bit():
    seg = _segments(jax.random.key(0))
    model = MarkovianReward(num_tasks=4, num_embodiments=3, hidden=(16, 16))
    reference = PreOptionMarkovianReward(num_tasks=4, num_embodiments=3)
    variables = model.init(jax.random.key(1), seg["obs"], seg["act"], seg["task"], seg["embodiment"])

    def outputs_and_grads(m):
        forward = jax.jit(lambda p: _apply(m, {**variables, "params": p}, seg))
        grads = jax.jit(jax.grad(lambda p: jnp.sum(forward(p)[0] ** 2)))
        return forward(variables["params"]), grads(variables["params"])

    for got, want in zip(jax.tree.leaves(outputs_and_grads(model)), jax.tree.leaves(outputs_and_grads(reference))):
        assert np.array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_bfloat16_multiplies_in_bfloat16_and_keeps_parameters_returns_and_gradients_float32(kind):
    seg = _segments(jax.random.key(2))
    f32 = make_reward_model(kind, num_tasks=4, num_embodiments=3, **KINDS[kind])
    bf16 = make_reward_model(kind, num_tasks=4, num_embodiments=3, dtype=jnp.bfloat16, **KINDS[kind])
    variables = f32.init(jax.random.key(3), seg["obs"], seg["act"], seg["task"], seg["embodiment"])
    # The same parameter tree (names, shapes, float32), so artefacts load whatever the dtype.
    bf16_variables = bf16.init(jax.random.key(3), seg["obs"], seg["act"], seg["task"], seg["embodiment"])
    assert jax.tree.map(lambda x: (x.shape, x.dtype), variables) == jax.tree.map(lambda x: (x.shape, x.dtype),
                                                                                 bf16_variables)

    def forward(m):
        return lambda p: _apply(m, {**variables, "params": p}, seg)

    dots = {name: _dot_types(jax.make_jaxpr(forward(m))(variables["params"]).jaxpr)
            for name, m in (("f32", f32), ("bf16", bf16))}
    assert dots["f32"] and set(dots["f32"]) == {(("float32", "float32"), "float32")}
    assert len(dots["bf16"]) == len(dots["f32"]) and set(dots["bf16"]) == {(("bfloat16", "bfloat16"), "float32")}

    ret, steps = forward(bf16)(variables["params"])
    assert ret.dtype == steps.dtype == jnp.float32
    grads = jax.eval_shape(jax.grad(lambda p: jnp.sum(forward(bf16)(p)[0])), variables["params"])  # traced, not run
    assert {x.dtype for x in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}
    want = forward(f32)(variables["params"])[0]
    # bfloat16 keeps 8 mantissa bits (relative rounding 2^-9 per operand); 3% of the scale covers
    # the few layers' rounding and is far below the returns' own spread.
    np.testing.assert_allclose(ret, want, atol=3e-2 * float(jnp.max(jnp.abs(want))))
    assert not np.array_equal(np.asarray(ret), np.asarray(want))  # bfloat16 did round something


def test_optimizer_state_stays_float32_under_bfloat16():
    seg = _segments(jax.random.key(4))
    model = make_reward_model("markovian", num_tasks=4, num_embodiments=3, hidden=(16,), dtype=jnp.bfloat16)
    variables = model.init(jax.random.key(5), seg["obs"], seg["act"], seg["task"], seg["embodiment"])
    tx = make_optimizer(get_config("tiny").optimizer, total_steps=10)
    state = TrainState.create(variables, tx, jax.random.key(6))
    loss = ml_collections.ConfigDict(dict(margin=0.0, label_smoothing=0.0, center_coef=1e-3))
    batch = {"obs_a": seg["obs"], "act_a": seg["act"], "task_a": seg["task"], "embodiment_a": seg["embodiment"],
             "obs_b": seg["obs"][::-1], "act_b": seg["act"][::-1], "task_b": seg["task"][::-1],
             "embodiment_b": seg["embodiment"][::-1], "label": jnp.ones((B,)), "weight": jnp.ones((B,))}
    state, metrics = jax.jit(make_reward_update(loss, model, tx))(state, batch)
    floats = [x for x in jax.tree.leaves((state.params, state.opt_state)) if jnp.issubdtype(x.dtype, jnp.floating)]
    assert floats and {x.dtype for x in floats} == {jnp.dtype(jnp.float32)}
    assert metrics["loss"].dtype == jnp.float32 and np.isfinite(metrics["loss"])


def test_config_field_sets_the_module_dtype_and_absent_means_float32():
    block = {"kind": "markovian", "context_dim": 8, "aggregate": "sum"}
    make = lambda b: reward_model_from_config(b, (8,), num_tasks=4, num_embodiments=3)  # noqa: E731
    assert make(block) == make(dict(block, compute_dtype="float32"))
    assert make(dict(block, compute_dtype="bfloat16")).dtype == jnp.bfloat16
    with pytest.raises(ValueError, match="compute_dtype"):
        make(dict(block, compute_dtype="float16"))


SEEDS = tuple(range(8))


def _trained(inputs, config) -> tuple[np.ndarray, np.ndarray]:
    """(test accuracy [P], test returns [P, St]) of each point's best-validation model, trained
    as the sweep trains it (one member per point)."""
    test_returns, _, _ = train_one_size(config, inputs, config.model_sizes[0], "", None, log=lambda *_: None)
    ret = np.asarray(test_returns)[:, 0]
    prob = preference_probability(ret[:, inputs.test_a], ret[:, inputs.test_b], xp=np)
    return np.array([preference_metrics(p, inputs.test_label)["accuracy"] for p in prob]), ret  # as results.csv


def test_bfloat16_accuracy_equals_float32_within_the_seed_spread(tiny_preference_data):
    """The same tiny sweep points (oracle labels, N = 400, 8 seeds, one member) trained in
    float32 and in bfloat16, from the same initialisations on the same minibatches.

    Criterion: |mean_bf16 − mean_f32| ≤ 2 × the standard error over seeds of the float32
    accuracies, i.e. bfloat16 moves the mean accuracy by less than seed noise could. The float32
    mean sits far more than 2 SE above chance, so a bfloat16 run that collapsed to chance fails.
    """
    config = get_config("tiny")
    config.seeds, config.members, config.bootstrap = SEEDS, 1, False
    config.total_steps = config.chunk_steps = 200
    config.eval_every = 20
    inputs = make_sweep_data(tiny_preference_data, ("oracle",), (400,), SEEDS, members=1)
    f32, f32_returns = _trained(inputs, config)
    config.model.compute_dtype = "bfloat16"
    bf16, bf16_returns = _trained(inputs, config)
    assert not np.array_equal(f32_returns, bf16_returns)  # the config field reached the model
    se = np.std(f32, ddof=1) / np.sqrt(len(SEEDS))
    assert 0 < se and np.mean(f32) - 0.5 > 2 * se + 0.1, (f32, se)  # the test can tell bf16 from chance
    assert abs(np.mean(bf16) - np.mean(f32)) <= 2 * se, (f32, bf16, se)
