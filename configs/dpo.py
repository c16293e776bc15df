"""DPO-family policy optimisation on robot-segment preferences, swept over (β, loss type).

  python -m experiments.train_dpo --config configs/dpo.py:quick --workdir runs/dpo_quick
  python -m experiments.train_dpo --config configs/dpo.py:default --workdir runs/dpo \
      --config.sft_workdir=runs/sft

π_ref is restored from ``sft_workdir`` (a train_sft workdir) or, when that is empty, trained
first with the ``sft`` sub-config into ``<workdir>/sft``. Every point of betas × loss_types
trains in one vmapped program. A loss type is a name from rlhf_jax.losses.dpo.LOSS_TYPES or a
weighted blend such as "sigmoid:0.8+bco_pair:0.2". Writes ``dpo_metrics.csv``,
``dpo_summary.json`` and the orbax checkpoint ``checkpoints/dpo``.
"""
import ml_collections

from configs import sft as sft_config


def get_config(arg: str = "default") -> ml_collections.ConfigDict:
    if arg not in ("quick", "default"):
        raise ValueError(f"configs/dpo.py: field 'variant': expected 'quick' or 'default', got {arg!r}")
    quick = arg == "quick"
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.sft = sft_config.get_config(arg)
    c.sft_workdir = ""
    c.dataset = c.sft.dataset  # the same episodes the reference policy was cloned from
    c.preferences = ml_collections.ConfigDict({
        "segment_length": 10, "stride": 5, "teacher": "oracle",
        "n_train": 3000 if quick else 20000, "n_val": 200 if quick else 1000,
        "n_test": 500 if quick else 2000, "seed": 0, "split_seed": 0})
    c.dpo = ml_collections.ConfigDict({
        "betas": (0.05, 0.2) if quick else (0.01, 0.05, 0.1, 0.2, 0.5),
        "loss_types": ("sigmoid", "bco_pair") if quick else ("sigmoid", "ipo", "hinge", "robust", "bco_pair",
                                                        "sppo_hard", "nca_pair", "apo_zero", "exo_pair"),
        "label_smoothing": 0.0 if quick else 0.1, "rpo_alpha": 0.0,
        # "sum": segment log-probs Σ_t log π(a_t|s_t); "mean": per step (Σ_t / T), policy and π_ref alike.
        "logp_reduction": "sum",
        # A floor on log σ for the policy and π_ref alike (None = π_ref's own σ): with π_SFT's σ ≈ 0.03
        # the pair log-probs are dominated by a few steps far from the mean.
        "log_std_floor": ml_collections.config_dict.placeholder(float)})
    c.optimizer = ml_collections.ConfigDict({
        "learning_rate": 3e-4, "schedule": "cosine", "warmup_steps": 20, "total_steps": 0,
        "grad_clip": 1.0, "weight_decay": 0.0})
    # action_clip: |a| bound before the tanh inverse when the policy and π_ref score a segment
    # (both with this value; it may differ from the one π_SFT was cloned with).
    c.train = ml_collections.ConfigDict({
        "steps": 200 if quick else 5000, "batch_size": 64, "log_every": 50 if quick else 250,
        "action_clip": 0.999})
    c.eval = c.sft.eval
    # Devices on the "ensemble" mesh axis: sweep points split over them, each point's batch over
    # the remaining devices ("data"). 1 = every point on every device, batch split over all.
    c.mesh = ml_collections.ConfigDict({"ensemble": 1})
    # CSV/JSON are always written; TensorBoard event files (tensorboardX) and W&B on request.
    c.log = ml_collections.ConfigDict({"tensorboard": False, "wandb": False})
    return c
