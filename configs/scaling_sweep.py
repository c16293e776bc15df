"""Reward-model scaling sweep: held-out accuracy vs number of preference pairs N.

Run (quick: ≤ 3 minutes on 2 CPU cores once the default dataset is cached):

  python -m experiments.scaling_sweep --config configs/scaling_sweep.py:quick --workdir runs/quick

The medium grid's step budget comes from a pilot of its largest N (docs/scaling_sweep.md):

  python -m experiments.scaling_sweep --config configs/scaling_sweep.py:medium_pilot --workdir runs/medium_pilot
  python -m experiments.step_budget runs/medium_pilot
  python -m experiments.scaling_sweep --config configs/scaling_sweep.py:medium --workdir runs/medium [--resume]

or in shards of its N grid, each committed as it finishes, merged into the files one whole run writes
(docs/scaling_sweep.md, "The medium grid in shards"):

  python -m experiments.scaling_sweep --config configs/scaling_sweep.py:medium --workdir runs/medium_a \\
      --config.n_values="(25,50)"
  ...
  python -m experiments.merge_sweep runs/medium_a runs/medium_b ... --out runs/medium_9600

Variants (the part after the colon); override any field with `--config.<field>=<value>`, e.g.
`--config.members=1 --config.conditions="('oracle','mistake')" --config.fit.fix_e=True`:
  quick   N ∈ {50 … 1,600} (6 points), 3 seeds, ensembles of 3, conditions oracle + mistake,
          a 32×32 MLP, 800 steps of batch 32.
  medium  N ∈ {25 … 12,800} (10 doublings, 2.7 decades), 5 seeds, ensembles of 5, oracle +
          mistake, on the `large` dataset (8,400 episodes, so N = 12,800 pairs reuse few
          segments); a 32×32 MLP, 9,600 steps of batch 64 (48 passes over N = 12,800), the
          budget the `medium_pilot` run justifies (`python -m experiments.step_budget DIR`), with
          the `log` evaluation schedule (step 0, dense early). results/medium_9600 holds its
          run, made as five shards of two N each (results/medium_shards) and merged.
  medium_pilot
          medium's largest N only (12,800), 2 seeds, medium's steps: fixes medium's step budget
          up front (≥ 80% of members must peak before 0.75·T).
  paper   N on a log grid 100 … 25,600 (9 points), 5 seeds, ensembles of 5, four teacher presets.
  tiny    a few seconds on the `tiny` dataset; for tests.
  lerobot the tiny shapes on a LeRobot dataset (`--config.dataset=lerobot:<dir>`) with a label file
          as the condition (`--config.conditions="('file:<labels.jsonl>',)"`), N ∈ {10, 20, 40}: the
          pools of configs/label_server.py:lerobot, so the page's labels answer what it asks.
          Foreign data has no gold: only `file:` conditions, and the test pairs are held-out
          answers of the file (docs/lerobot.md).
  qc      quick, with QC policies of the simulated crowd as conditions (raw, filtered, majority,
          adjudicated) beside the oracle: accuracy vs N and dollars per pair under each.
  pixels  state, pixels and pixels + proprioception reward models (`feature_kinds`) on the same
          oracle pairs of the `default` dataset: quick's N grid, seeds and ensembles of 3, 16x16
          front-camera frames of every 5th step, a patch CNN of 8 and 16 channels, a 32x32 MLP. The
          committed run (results/pixels_vs_state) took 8.5 minutes on 2 CPU cores. docs/pixels.md:

  python -m experiments.scaling_sweep --config configs/scaling_sweep.py:pixels --workdir runs/pixels
  python -m benchmarks.pixels_sweep --out runs/pixels/benchmark.json
  python -m experiments.publish runs/pixels results/pixels_vs_state \
      --files results.csv,fit.json,accuracy_vs_n.png,run_info.json,config.json,benchmark.json
  python -m experiments.pixels_report results/pixels_vs_state --docs docs/pixels.md

  pixels_gpu
          the same kinds sized for one GPU (not run on CPU): N up to 3,200, ensembles of 3, 48x48
          frames of every step, 3x3 CNNs of (16, 32, 32) and (32, 64, 64) channels, 1,600 steps.
  objectives
          quick's N grid and seeds with one head per objective (task, safety, smoothness,
          efficiency), ensembles of 2, trained on the sub-answers of the `mistake` teacher (B-Pref's
          ε = 0.1) and scored against each objective's oracle; a `previous_step` reward model (the
          smoothness head needs the previous step to see jerk). The committed run
          (results/objectives) took 41 minutes on 2 CPU cores; docs/objectives.md:

  python -m experiments.scaling_sweep --config configs/scaling_sweep.py:objectives --workdir runs/objectives
  python -m experiments.publish runs/objectives results/objectives \
      --files results.csv,fit.json,accuracy_vs_n.png,run_info.json,config.json
  python -m experiments.objectives_report results/objectives --docs docs/objectives.md

Options: `surf.enabled` (SURF pseudo-labels and temporal crops for every condition),
`pseudo.droid` (a second pass with DROID-style pseudo-labels, rows "<condition>+droid") and
`model.compute_dtype` ("float32", or "bfloat16" matmuls with float32 accumulation).

Conditions are label sources: teacher presets, `qc:<pool>/<policy>` (a simulated team under a QC
policy) or `file:<path>` (a human label file); see rlhf_jax/labels/qc_sources.py.

Every (condition, N, seed, member) trains inside one compiled program per model size. The
best-validation ensembles of `save_models` (default: first condition, seed 0, every N) are saved
as reward-model artefacts under `<workdir>/reward_models/`.
"""
from __future__ import annotations

import ml_collections

from configs import sft
from rlhf_jax.config_schema import Field, boolean, choice, integer, integers, layers, real, seed, string, strings

VARIANTS = ("quick", "medium", "medium_pilot", "paper", "tiny", "qc", "lerobot", "objectives", "pixels", "pixels_gpu")


def _base() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.variant = "quick"
    c.dataset = "default"           # configs/dataset.py variant, built and cached on first use
    c.data_dir = ""                 # "" → $RLHF_JAX_DATA_DIR or ~/.cache/rlhf_jax
    # An RLDS directory to read instead of the variant (e.g. π_SFT rollouts written by
    # experiments.rlhf_pipeline); the variant then only supplies the preference defaults.
    c.dataset_path = ""
    c.segment_length = 25
    c.stride = 10
    c.feature_kind = "joint"        # "eef" for embodiment-agnostic features; "pixels", "pixels_proprio"
    # Feature kinds trained in turn on the same pairs (experiments/stages/feature_kinds.py); () = (feature_kind,).
    c.feature_kinds = ()
    # Camera frames of the pixel kinds (rlhf_jax.data.frames): size x size from camera `view`, the
    # model reads every `every`-th step; cnn_sizes (channels per stride-2 layer) is a sweep axis; encoder
    # "patch" (2x2 convs as batched matmuls: fast on CPU) or "conv" (3x3 convs, rlhf_jax.models.encoders).
    c.pixels = ml_collections.ConfigDict(dict(size=16, view="front", every=5, cnn_sizes=((8, 16),), encoder="patch"))
    c.cross_embodiment = False
    c.num_tasks = 4
    c.num_embodiments = 3           # 0 → no embodiment input
    c.n_train_pool = 4000
    c.n_val = 400
    c.n_test = 1000
    c.pool_seed = 0
    c.split_seed = 0
    c.label_seed = 0
    c.conditions = ("oracle", "mistake")   # label sources: teacher presets (rlhf_jax.preferences.annotators), vmapped
    # Objectives (rlhf_jax.preferences.objectives: task, safety, smoothness, efficiency): () trains on
    # the conditions' answers to the main question; else one head per (condition, objective), named
    # "<condition>@<objective>", on that objective's sub-answers (teacher presets, or label files'
    # rubric answers; docs/objectives.md).
    c.objectives = ()
    c.n_values = (50, 100, 200, 400, 800, 1600)
    c.seeds = (0, 1, 2)
    c.members = 3
    c.bootstrap = True
    # Weight each training label by the confidence its annotator reported (rlhf_jax.train.sweep_data).
    c.confidence_weights = False
    # SURF semi-supervised pseudo-labels with temporal crops (rlhf_jax.train.sweep.SurfSpec): the
    # segment table keeps `crop` steps either side; tau, lam, mu as in SURF (0.95, 1, 1–4).
    c.surf = ml_collections.ConfigDict(dict(enabled=False, tau=0.95, lam=1.0, mu=2, crop=5))
    # DROID-style pseudo-labels (rlhf_jax.train.active.droid_second_pass): every point retrains on
    # its labels plus its top-vs-bottom `fraction` unlabelled pool pairs; rows "<condition>+droid".
    c.pseudo = ml_collections.ConfigDict(dict(droid=False, fraction=0.2))
    c.seed = 0
    # compute_dtype "bfloat16": the reward model's matmuls take bfloat16 operands and accumulate in
    # float32; parameters, optimiser state, returns and the loss stay float32 (rlhf_jax.models.reward).
    c.model = ml_collections.ConfigDict(dict(kind="markovian", context_dim=8, aggregate="sum", compute_dtype="float32"))
    c.model_sizes = ((32, 32),)     # each size is one compile (a Python loop)
    c.optimizer = ml_collections.ConfigDict(dict(learning_rate=3e-3, schedule="cosine", warmup_steps=50,
                                                 weight_decay=1e-4, grad_clip=1.0))
    c.loss = ml_collections.ConfigDict(dict(margin=0.0, label_smoothing=0.0, center_coef=1e-3))
    c.batch_size = 32
    c.total_steps = 800
    c.eval_every = 25
    # When validation is scored (rlhf_jax.train.eval_schedule): "linear" every eval_every steps,
    # "log" step 0 + log-spaced early + every 2·eval_every late (about as many evaluations).
    c.eval_schedule = "linear"
    c.chunk_steps = 400
    # Sweep points trained as this many equal slices in turn (one device): the same results (to rounding), with
    # the XLA temporaries (training activations) of one slice; the paper grid needs 4 for 8 GB.
    c.point_groups = 1
    c.fit = ml_collections.ConfigDict(dict(fix_e=False, n_bootstrap=1000, target_error=0.1))
    # Best-validation ensembles saved as reward-model artefacts (rlhf_jax.reward_artifact) under
    # workdir/reward_models/: condition "" = the first condition, "*" = every condition (a
    # per-objective sweep's heads, for PPO's reward.kind="objectives"); seeds = which sweep seeds;
    # n_values () = every N of the grid.
    c.save_models = ml_collections.ConfigDict(dict(enabled=True, condition="", seeds=(0,), n_values=()))
    return c


def get_config(arg: str | None = "quick") -> ml_collections.ConfigDict:
    """`arg` = the variant; see the module docstring."""
    variant = arg or "quick"
    if variant not in VARIANTS:
        raise ValueError(f"configs/scaling_sweep.py: field 'variant': expected one of {VARIANTS}, got {variant!r}")
    c = _base()
    c.variant = variant
    for variants, settings in _VARIANT_SETTINGS:
        if variant in variants:
            settings(c, variant)
    return c


def _medium(c: ml_collections.ConfigDict, variant: str) -> None:
    c.dataset = "large"
    c.n_train_pool = 16000
    c.n_val = 600
    c.n_test = 2000
    c.n_values = tuple(25 * 2**k for k in range(10))
    c.seeds = (0, 1, 2, 3, 4)
    c.members = 5
    c.batch_size = 64
    # The budget the pilot justified: at 4,800 steps the rule failed for oracle
    # (results/medium_pilot), at 9,600 it holds (results/medium_pilot_9600).
    c.total_steps = 9600
    c.eval_every = 50
    c.eval_schedule = "log"
    c.chunk_steps = 400
    c.save_models.enabled = False
    if variant == "medium_pilot":
        c.n_values = (12800,)
        c.seeds = (0, 1)


def _paper(c: ml_collections.ConfigDict, variant: str) -> None:
    c.n_train_pool = 30000
    c.n_val = 2000
    c.n_test = 5000
    c.conditions = ("oracle", "stochastic", "mistake", "noisy_pool")
    c.n_values = (100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600)
    c.seeds = (0, 1, 2, 3, 4)
    c.members = 5
    c.batch_size = 64
    c.total_steps = 8000
    c.eval_every = 100
    c.chunk_steps = 1000
    c.model_sizes = ((128, 128),)
    c.point_groups = 4


def _objectives(c: ml_collections.ConfigDict, variant: str) -> None:
    # 4 objectives x 6 N x 3 seeds = 72 points x 2 members: 144 models against quick's 108.
    c.conditions = ("mistake",)
    c.members = 2
    c.objectives = ("task", "safety", "smoothness", "efficiency")
    c.model.kind = "previous_step"
    c.save_models.enabled = False


def _pixels(c: ml_collections.ConfigDict, variant: str) -> None:
    # State, pixels and pixels + proprioception on the same oracle pairs (docs/pixels.md).
    c.conditions = ("oracle",)
    c.feature_kinds = ("joint", "pixels", "pixels_proprio")
    c.save_models.enabled = False
    if variant == "pixels":  # 2 CPU cores: 16x16 frames, every 5th step (5 per segment), one small patch CNN
        c.pixels.size, c.pixels.every, c.pixels.cnn_sizes = 16, 5, ((8, 16),)
    else:  # one GPU: every step at 48x48, two 3x3 CNN widths, ensembles of 3
        c.n_values = (50, 100, 200, 400, 800, 1600, 3200)
        c.pixels.size, c.pixels.every, c.pixels.encoder = 48, 1, "conv"
        c.pixels.cnn_sizes = ((16, 32, 32), (32, 64, 64))
        c.total_steps, c.chunk_steps = 1600, 400


def _qc(c: ml_collections.ConfigDict, variant: str) -> None:
    c.conditions = ("qc:crowd/raw", "qc:crowd/filtered", "qc:crowd/majority", "qc:crowd/adjudicated", "oracle")
    c.save_models.enabled = False


def _tiny(c: ml_collections.ConfigDict, variant: str) -> None:
    c.dataset = "tiny" if variant == "tiny" else ""
    c.segment_length = 8
    c.stride = 4
    c.n_train_pool = 600
    c.n_val = 100
    c.n_test = 100
    c.conditions = ("oracle",)
    c.n_values = (25, 50, 100, 200, 400)
    c.seeds = (0, 1)
    c.members = 2
    c.total_steps = 40
    c.eval_every = 10
    c.chunk_steps = 20
    c.model_sizes = ((64, 64),)
    c.fit.n_bootstrap = 50
    if variant == "lerobot":
        c.conditions = ()       # ('file:<labels.jsonl>',), given on the command line
        c.n_values = (10, 20, 40)
        c.num_tasks = 8


# What each variant changes from _base(); "quick" is _base() itself.
_VARIANT_SETTINGS = ((("medium", "medium_pilot"), _medium), (("paper",), _paper), (("objectives",), _objectives),
                     (("pixels", "pixels_gpu"), _pixels), (("qc",), _qc), (("tiny", "lerobot"), _tiny))


# --- Field descriptions (rlhf_jax.config_schema): checked before the job writes or compiles ------
# Relations (chunk_steps a multiple of eval_every, total_steps of chunk_steps, point_groups divides
# the points, n_values within the pool, save_models within the grid, label sources that exist)
# stay in experiments.stages.sweep.validate.
LOSS_FIELDS = (   # the Bradley-Terry loss (rlhf_jax.losses.bradley_terry)
    real("loss.margin", "margin m in sigma(r_a - r_b - m)", 0.0),
    real("loss.label_smoothing", "labels smoothed toward 1/2 by this much", 0.0, 0.5),
    real("loss.center_coef", "weight of the penalty on the mean return (keeps rewards centred)", 0.0),
)
DATA_FIELDS = (   # which segments and pairs (rlhf_jax.data.dataset.load_preference_data)
    string("dataset", "configs/dataset.py variant, or lerobot:<dir> / oxe:<name>"),
    string("data_dir", "dataset cache directory ('' = $RLHF_JAX_DATA_DIR or ~/.cache/rlhf_jax)"),
    Field("dataset_path", "string", "an RLDS directory read instead of the variant ('' = none)", optional=True),
    integer("segment_length", "steps per preference segment"),
    integer("stride", "steps between segment starts"),
    choice("feature_kind", "'joint' (with an embodiment token), embodiment-agnostic 'eef', or camera frames "
           "'pixels' / 'pixels_proprio' (docs/pixels.md)", ("joint", "eef", "pixels", "pixels_proprio")),
    boolean("cross_embodiment", "pair segments of different arms"),
    integer("num_tasks", "task-embedding rows (more than the largest task id)"),
    integer("num_embodiments", "embodiment-embedding rows (0 = no embodiment input)", lo=0),
    integer("n_train_pool", "candidate training pairs"),
    integer("n_val", "validation pairs"),
    integer("n_test", "test pairs"),
    seed("pool_seed"),
    seed("split_seed"),
)
# Pixel feature kinds (docs/pixels.md; experiments/stages/feature_kinds.py checks the relations).
PIXEL_FIELDS = (
    Field("feature_kinds", "choices", "feature kinds trained in turn on the same pairs (() = feature_kind)",
          options=("joint", "eef", "pixels", "pixels_proprio"), optional=True),
    Field("pixels.size", "integer", "frame side in pixels", lo=4, optional=True),
    Field("pixels.view", "choice", "the camera the frames come from", options="rlhf_jax.envs.render:VIEWS",
          optional=True),
    Field("pixels.every", "integer", "a frame every this many steps", lo=1, optional=True),
    Field("pixels.cnn_sizes", "layers", "CNN channel counts per layer, one compile each", optional=True),
    Field("pixels.encoder", "choice", "'patch' (2x2 stride-2, fast on CPU) or 'conv' (3x3) CNN",
          options="rlhf_jax.models.encoders:IMAGE_ENCODERS", optional=True),
)
# SURF (rlhf_jax.train.sweep.SurfSpec); a config without the block trains without SURF.
SURF_FIELDS = (
    Field("surf.enabled", "boolean", "SURF pseudo-labels and temporal crops for every condition", optional=True),
    Field("surf.tau", "real", "SURF's confidence threshold for a pseudo-label", lo=0.5, hi=1.0, open_hi=True,
          optional=True),
    Field("surf.lam", "real", "weight of the pseudo-label loss", lo=0.0, optional=True),
    Field("surf.mu", "integer", "unlabelled:labelled batch ratio", lo=1, optional=True),
    Field("surf.crop", "integer", "temporal-crop margin in steps", lo=1, optional=True),
)
MODEL_FIELDS = (   # the reward model (rlhf_jax.models.reward)
    choice("model.kind", "reward-model architecture", "rlhf_jax.models.reward:REWARD_MODELS"),
    integer("model.context_dim", "width of the task/embodiment embedding"),
    choice("model.aggregate", "how per-step rewards make a segment's return", ("sum", "mean")),
)
FIELDS = (
    choice("variant", "the variant this config was built from", VARIANTS),
    *DATA_FIELDS,
    *PIXEL_FIELDS,
    seed("label_seed"),
    strings("conditions", "label sources: teacher presets, qc:<pool>/<policy> or file:<path>"),
    Field("objectives", "choices", "objectives, one head each, answered by the teacher or label-file conditions "
          "(docs/objectives.md; () = the overall question only)", options="rlhf_jax.preferences.objectives:OBJECTIVE_NAMES",
          optional=True),
    integers("n_values", "training-pair counts N of the grid", nonempty=True),
    integers("seeds", "sweep seeds", lo=0, nonempty=True),
    integer("members", "ensemble members per point"),
    boolean("bootstrap", "Poisson bootstrap weights per member"),
    Field("confidence_weights", "boolean", "weight each label by its annotator's confidence", optional=True),
    *SURF_FIELDS,
    Field("pseudo.droid", "boolean", "a second pass with DROID-style pseudo-labels", optional=True),
    Field("pseudo.fraction", "real", "top/bottom fraction of the pool pseudo-labelled", lo=0.0, hi=0.5, open_lo=True,
          optional=True),
    seed("seed"),
    *MODEL_FIELDS,
    Field("model.compute_dtype", "choice", "matmul operand dtype (accumulation stays float32)",
          options="rlhf_jax.models.reward:COMPUTE_DTYPES", optional=True),
    layers("model_sizes", "reward-MLP sizes, one compile each"),
    *sft.OPTIMIZER_FIELDS,
    *LOSS_FIELDS,
    integer("batch_size", "pairs per step and member"),
    integer("total_steps", "training steps"),
    integer("eval_every", "steps between validation evaluations"),
    Field("eval_schedule", "choice", "when validation is scored ('linear' if absent)",
          options="rlhf_jax.train.eval_schedule:SCHEDULES", optional=True),
    integer("chunk_steps", "steps per compiled chunk (a checkpoint after each)"),
    integer("point_groups", "slices the sweep points train in, one after another (1 if absent)", optional=True),
    boolean("fit.fix_e", "fix the power law's floor E at 0"),
    integer("fit.n_bootstrap", "bootstrap resamples of the power-law fit"),
    real("fit.target_error", "error the fit reports the N for", 0.0, 1.0, open_lo=True, open_hi=True),
    boolean("save_models.enabled", "save best-validation ensembles as reward-model artefacts"),
    string("save_models.condition", "condition whose ensembles are saved ('' = the first, '*' = every one)"),
    integers("save_models.seeds", "sweep seeds whose ensembles are saved", lo=0),
    integers("save_models.n_values", "N whose ensembles are saved (() = every N)"),
)
UNCHECKED = {}
