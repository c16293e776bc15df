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
from rlhf_jax.config_schema import choice, integer, prefixed, real, reals, seed, string, strings


VARIANTS = ("quick", "default")


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


# --- Field descriptions (rlhf_jax.config_schema): checked before the job writes or compiles ------
# Relations (log_std_floor within the model's clip, loss-type blends that parse, mesh.ensemble
# divides the devices and points, the sft_workdir's checkpoint) stay in experiments.stages.dpo.
FIELDS = (
    seed("seed"),
    *prefixed("sft.", sft_config.FIELDS),
    string("sft_workdir", "a train_sft workdir whose pi_SFT is pi_ref ('' = train it here)"),
    integer("preferences.segment_length", "steps per preference segment"),
    integer("preferences.stride", "steps between segment starts"),
    string("preferences.teacher", "label source of the pairs (a teacher preset)"),
    integer("preferences.n_train", "training pairs"),
    integer("preferences.n_val", "validation pairs"),
    integer("preferences.n_test", "test pairs"),
    seed("preferences.seed"),
    seed("preferences.split_seed"),
    reals("dpo.betas", "DPO beta of each sweep point", 0.0, open_lo=True, nonempty=True),
    strings("dpo.loss_types", "loss names of rlhf_jax.losses.dpo.LOSS_TYPES or blends such as "
            "'sigmoid:0.8+bco_pair:0.2'", nonempty=True),
    real("dpo.label_smoothing", "labels smoothed toward 1/2 by this much", 0.0, 0.5),
    real("dpo.rpo_alpha", "weight of the NLL term on the preferred segment", 0.0),
    choice("dpo.logp_reduction", "segment log-prob: 'sum' over steps or per-step 'mean'", ("sum", "mean")),
    real("dpo.log_std_floor", "floor on log sigma of the policy and pi_ref (None = pi_ref's own)", optional=True),
    *(f for f in sft_config.FIELDS if f.path.startswith(("optimizer.", "log."))),
    integer("train.steps", "DPO steps"),
    integer("train.batch_size", "pairs per step"),
    integer("train.log_every", "steps between metric rows"),
    real("train.action_clip", "|a| bound before the tanh inverse", 0.0, 1.0, open_lo=True, open_hi=True),
    integer("mesh.ensemble", "devices on the mesh's ensemble axis"),
)
# dataset and eval are the sft block's own groups (one object each), so they are described there.
UNCHECKED = {"dataset": "the same group as sft.dataset, checked as that",
             "eval": "the same group as sft.eval, checked as that"}
