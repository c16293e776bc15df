"""DPO variants on a finished RLHF pipeline workdir: the log-σ floor and the action clip the pair
log-probs are computed with, and whether a segment's log-prob is summed or averaged over its steps
(with the β that goes with each), each over several DPO seeds, against π_SFT on the pipeline's
evaluation states.

  python -m experiments.rlhf_pipeline --config configs/rlhf_pipeline.py:quick --workdir runs/pipeline_quick
  python -m experiments.dpo_variants --config configs/dpo_variants.py:quick \
      --config.pipeline_workdir=runs/pipeline_quick --workdir runs/dpo_variants_quick

``pipeline`` is the pipeline config the workdir was made with: its ``dpo`` block is the base DPO
config (one loss type), its ``annotator`` labels the pairs, its arms × tasks and ``eval`` block
give the evaluation states. Each variant's log-prob reduction and β replace that block's
``dpo.logp_reduction`` and ``dpo.betas``. π_SFT (``sft/checkpoints/sft``) and its rollouts
(``rollouts/stage.json``) are read from ``pipeline_workdir``. A DPO seed sets both the preference
pairs' draw and labels (``dpo.preferences.seed``) and the training key (``dpo.seed``): what an
independent replicate changes. Variants: quick and tiny (tests).

``variants``: (name, dpo.log_std_floor or None, train.action_clip, dpo.logp_reduction, β) per
variant; 'sum' at β 0.1 is the pipeline's own DPO setting. Why these values
(log-probs of a tanh-squashed Gaussian, rlhf_jax.models.policy.action_log_prob: per joint,
log N(atanh(a); μ, σ) − log(1 − a²) with a clipped to ±action_clip first):

* π_SFT's log σ is about −3.4 (σ ≈ 0.033), while the pairs come from its rollouts with noise
  0.05, 0.2 and 0.5 × qd_max, so a step 0.2 off the mean costs z²/2 ≈ 18 nats and a pair's
  log-ratio is decided by its few worst steps. Floor −2.5 (σ ≈ 0.08, between the two lowest
  noise levels: that step costs ≈ 3 nats) and −1.5 (σ ≈ 0.22, the middle noise level: ≈ 0.4).
* The executed velocity is clipped to ±qd_max, so noisy rollouts hold many actions at exactly
  |a| = 1. At action_clip 0.999, such a step has atanh = 3.8 and a Jacobian term −log(1 − a²)
  = 6.2 nats per joint, and its Gaussian term, some 2 units of atanh from a mean near 0.9 in
  action units, costs thousands of nats at σ = 0.033. Clip 0.99 (atanh 2.65, 3.9 nats) and 0.95
  (atanh 1.83, 2.3 nats, just below the expert's ±0.95 requests) pull those steps toward the
  rest.
* Floor −2.5 with clip 0.99: both at once, the milder value of each.
* Per-step log-probs (``mean``: Σ_t / T, policy and π_ref alike) divide a pair's log-ratio by
  the segment length T (25 steps in the quick pipeline), so the implicit reward β · log-ratio
  needs a β about T times larger for the same scale: β 0.1 summed is β 2.5 per step. The mean
  variants take β 0.5 and 5, on either side of it (the values an earlier one-seed comparison of
  the two reductions used). The pipeline's segments all have length T, so the mean at β trains
  exactly as the sum at β / T (tests/test_sft_dpo_train.py): these two variants are summed β 0.02
  and 0.2, a softer and a sharper β than the pipeline's.
"""
import ml_collections

from configs import rlhf_pipeline
from rlhf_jax.config_schema import choice, integers, prefixed, string

VARIANTS = ("quick", "tiny")
# (name, dpo.log_std_floor or None = π_SFT's own σ, train.action_clip, dpo.logp_reduction, β);
# reasons in the docstring. The command line checks overrides field by field against the first
# record, whose None floor lets a floor be None or a number (the job validates the values).
QUICK_VARIANTS = (("baseline", None, 0.999, "sum", 0.1), ("floor_-2.5", -2.5, 0.999, "sum", 0.1),
                  ("floor_-1.5", -1.5, 0.999, "sum", 0.1), ("clip_0.99", None, 0.99, "sum", 0.1),
                  ("clip_0.95", None, 0.95, "sum", 0.1), ("floor_-2.5_clip_0.99", -2.5, 0.99, "sum", 0.1),
                  ("mean_beta_0.5", None, 0.999, "mean", 0.5), ("mean_beta_5", None, 0.999, "mean", 5.0))


def get_config(arg: str = "quick") -> ml_collections.ConfigDict:
    if arg not in VARIANTS:
        raise ValueError(f"configs/dpo_variants.py: field 'variant': expected one of {VARIANTS}, got {arg!r}")
    c = ml_collections.ConfigDict()
    c.variant = arg
    c.pipeline_workdir = ""   # an rlhf_pipeline workdir whose sft and rollouts stages finished
    c.pipeline = rlhf_pipeline.get_config("quick")
    c.seeds = (0, 1, 2)
    c.variants = QUICK_VARIANTS
    if arg == "tiny":   # the pipeline settings of tests/pipeline_fixtures.py TINY, two variants × two seeds
        p = c.pipeline
        p.arms, p.tasks, p.eval.n_episodes = ("ur5",), ("reach",), 3
        d = p.dpo
        d.train.steps, d.train.log_every, d.train.batch_size = 4, 2, 8
        d.preferences.n_train, d.preferences.n_val, d.preferences.n_test = 60, 20, 20
        d.preferences.segment_length, d.preferences.stride, d.sft.eval.n_episodes = 10, 5, 1
        c.seeds = (0, 1)
        # The second variant sets every field away from the baseline: one run covers them all.
        c.variants = (("baseline", None, 0.999, "sum", 0.1),
                      ("floor_-2.5_clip_0.99_mean_beta_5", -2.5, 0.99, "mean", 5.0))
    return c


# --- Field descriptions (rlhf_jax.config_schema): checked before the job writes or compiles ------
FIELDS = (
    choice("variant", "the variant this config was built from", VARIANTS),
    string("pipeline_workdir", "an rlhf_pipeline workdir whose sft and rollouts stages finished"),
    *prefixed("pipeline.", rlhf_pipeline.FIELDS),
    integers("seeds", "DPO seeds per variant (at least two)", lo=0, nonempty=True),
)
UNCHECKED = {**{f"pipeline.{path}": reason for path, reason in rlhf_pipeline.UNCHECKED.items()},
             "variants": "records (name, log_std_floor or None, action_clip, logp_reduction, beta), checked "
                         "record by record by experiments.dpo_variants.validate_variants"}
