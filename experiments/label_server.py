"""The labelling page: a local web app that appends human preference labels to a label file.

  python -m experiments.label_server --config configs/label_server.py:tiny --workdir runs/label_tiny
  python -m experiments.label_server --config configs/label_server.py:tiny --workdir runs/label_tiny --resume

Serves http://127.0.0.1:<port>/ (printed at start, with each annotator's token when `host` is not
127.0.0.1). Writes to the workdir:
  config.json    the config (a resume must use the same one)
  labels.jsonl   every answer, appended and fsynced as it is given (`rlhf_jax.labels.label_set_io`
                 format; reads as a QC-report file and a sweep's `file:` condition)
  clips/         the WebM clips, cached under a hash of what they depend on
  tokens.json    the annotators' tokens (only when bound to another address than 127.0.0.1)
"""
from __future__ import annotations

import dataclasses
import errno
import functools
import json
import os
import secrets
import socket
import sys
import threading
from typing import Callable

import numpy as np

from configs import label_server as label_server_config
from experiments import cli
from rlhf_jax import checkpoint, config_schema
from rlhf_jax.preferences import annotators as ann
from rlhf_jax.labels import label_pools
from rlhf_jax.data.dataset import dataset_config, ensure_dataset, load_preference_data
from rlhf_jax.labels import clips, pair_queue
from rlhf_jax.labels.label_appender import LabelAppender
from rlhf_jax.labels.session import LabelSession
from rlhf_jax.errors import describe

INTERFACE_VERSION = "label-server/1"
LOCALHOST = "127.0.0.1"
LABELS_FILE = "labels.jsonl"


@dataclasses.dataclass
class Sources:
    """What the page shows: segments, candidate pools, gold pairs, and a clip maker."""
    segments: object
    train: tuple
    val: tuple
    gold: tuple | None
    views: tuple
    frames: Callable  # frames(row, view) -> [T, H, W, 3] uint8
    clip_key: Callable  # clip_key(row, view) -> dict of what the clip depends on


def validate(config, config_file: str) -> None:
    """Every field the server reads, before any data is loaded or file written; raises ConfigError.

    Each field's own domain is its record in ``configs/label_server.py`` FIELDS; what follows
    depends on the source (its dataset, views, a gold rate of 0 without gold) or on other fields
    (n_pairs within the pools, val_share x n_pairs within n_val, one token per annotator)."""
    config_schema.validate(config, config_file, label_server_config.FIELDS)
    if config.source == "lerobot":
        if not str(config.dataset).startswith("lerobot:"):
            cli.fail(config_file, "dataset", "'lerobot:<dir>' (a LeRobot dataset directory)", config.dataset)
        dataset_config(config.dataset, config_file)
        if config.gold_rate != 0:
            cli.fail(config_file, "gold_rate", "0 for a LeRobot dataset (gold questions need a known answer)",
                     config.gold_rate)
    elif config.source == "sim":
        dataset_config(config.dataset, config_file)
        bad = [v for v in config.clip.views if v not in clips.sim_views()]
        if bad or not config.clip.views:
            cli.fail(config_file, "clip.views", f"camera views from {list(clips.sim_views())}", list(config.clip.views))
    else:
        from rlhf_jax.data import oxe  # pylint: disable=g-import-not-at-top
        if config.oxe.name not in oxe.registered():
            cli.fail(config_file, "oxe.name", f"an OXE dataset of {list(oxe.registered())}", config.oxe.name)
        if not config.oxe.path or not os.path.isdir(config.oxe.path):
            cli.fail(config_file, "oxe.path", "a local directory holding the TFDS dataset", config.oxe.path)
        if config.gold_rate != 0:
            cli.fail(config_file, "gold_rate", "0 for real data (gold questions need a known answer)", config.gold_rate)
    if config.n_pairs > config.n_train_pool + config.n_val:
        cli.fail(config_file, "n_pairs", f"in [1, n_train_pool + n_val = {config.n_train_pool + config.n_val}]",
                 config.n_pairs)
    if round(config.n_pairs * config.val_share) > config.n_val:
        cli.fail(config_file, "val_share", f"a share in [0, 1] with n_pairs·val_share <= n_val = {config.n_val}",
                 config.val_share)
    if len(set(config.annotators)) != len(config.annotators) or not all(
            a and a.replace("-", "").replace("_", "").isalnum() for a in config.annotators):
        cli.fail(config_file, "annotators", "distinct ids of letters, digits, '-' and '_'", list(config.annotators))
    if config.tokens and (len(config.tokens) != len(config.annotators) or min(map(len, config.tokens)) < 16):
        cli.fail(config_file, "tokens", f"() or one token of >= 16 characters per annotator ({len(config.annotators)})",
                 f"{len(config.tokens)} tokens")
    objectives = list(config.get("objectives", ()))
    if len(set(objectives)) != len(objectives) or set(objectives) & set(config.rubric):
        cli.fail(config_file, "objectives", "() or distinct objectives, none of them also a rubric question",
                 objectives)
    cli.check_data_dir(config_file, "data_dir", config.data_dir)


def sim_sources(config) -> Sources:
    """The simulated dataset's pools (as the scaling sweep draws them), gold pairs, clip renderer."""
    data_dir = config.data_dir or None
    path = ensure_dataset(config.dataset, data_dir)
    pref = load_preference_data(config.dataset, data_dir, path=path, segment_length=config.segment_length,
                                stride=config.stride, n_train=config.n_train_pool, n_val=config.n_val, n_test=0,
                                teacher="oracle", seed=config.pool_seed, split_seed=config.split_seed)
    from rlhf_jax.data import rlds  # pylint: disable=g-import-not-at-top
    episodes = rlds.load_rlds(path)
    seg = pref.segments
    gold = None
    n_gold = pair_queue.n_gold_items(config.n_pairs, config.gold_rate)
    if n_gold:
        exclude_a = np.concatenate([pref.train.idx_a, pref.val.idx_a])
        exclude_b = np.concatenate([pref.train.idx_b, pref.val.idx_b])
        ga, gb = label_pools.gold_pool(seg, exclude_a, exclude_b, n_gold, config.seed)
        oracle = ann.label_pairs("oracle", seg, ga, gb, seed=config.seed, timestamp=0.0).label
        gold = (ga, gb, np.asarray(oracle, np.float64))
    fingerprint = clips.renderer_fingerprint()

    def frames(row, view):
        ep = episodes[int(seg.episode_index[row])]
        return clips.sim_frames(ep, int(seg.start[row]), seg.length, view=view, size=config.clip.size)

    def clip_key(row, view):
        return {"kind": "sim", "dataset": os.path.basename(os.path.dirname(os.path.dirname(path))),
                "episode": seg.episode_ids[int(seg.episode_index[row])], "start": int(seg.start[row]),
                "length": int(seg.length), "view": view, "size": int(config.clip.size), "renderer": fingerprint}

    return Sources(seg, (pref.train.idx_a, pref.train.idx_b), (pref.val.idx_a, pref.val.idx_b), gold,
                   tuple(config.clip.views), frames, clip_key)


def oxe_sources(config) -> Sources:
    """An OXE dataset's same-instruction pairs (no gold) and its own camera frames."""
    from rlhf_jax.data import oxe  # pylint: disable=g-import-not-at-top
    o = config.oxe
    episodes = oxe.load_oxe(o.name, o.path, split=o.split, max_episodes=o.n_episodes or None)
    pref = oxe.make_real_preference_data(episodes, segment_length=config.segment_length, stride=config.stride,
                                         n_train=config.n_train_pool, n_val=config.n_val, n_test=0,
                                         seed=config.pool_seed, split_seed=config.split_seed,
                                         split_fractions=(1.0, 0.0, 0.0) if config.n_val == 0 else (0.8, 0.2, 0.0))
    cams, frames_by_ep = clips.oxe_cameras(o.name, o.path, o.split)
    views = tuple(config.clip.views) or tuple(cams)
    seg = pref.segments

    def frames(row, view):
        cam = frames_by_ep[int(seg.episode_index[row])][view]
        return clips.oxe_frames(cam, int(seg.start[row]), seg.length, size=config.clip.size)

    def clip_key(row, view):
        return {"kind": "oxe", "dataset": o.name, "path": os.path.abspath(o.path),
                "episode": seg.episode_ids[int(seg.episode_index[row])], "start": int(seg.start[row]),
                "length": int(seg.length), "camera": view, "size": int(config.clip.size)}

    return Sources(seg, (pref.train.idx_a, pref.train.idx_b), (pref.val.idx_a, pref.val.idx_b), None,
                   views, frames, clip_key)


def lerobot_sources(config) -> Sources:
    """A LeRobot dataset's pools (as the scaling sweep draws them from `lerobot:<dir>`), no gold, and
    its own cameras decoded by timestamp; every video is checked against its episodes first."""
    from rlhf_jax.data import lerobot, lerobot_format  # pylint: disable=g-import-not-at-top
    root = lerobot.parse_dataset(config.dataset)
    meta = lerobot_format.read_metadata(root)
    views = tuple(config.clip.views) or meta.video_keys
    if not views or not set(views) <= set(meta.video_keys):
        raise cli.ConfigError(describe(os.path.join(meta.root, "meta", "info.json"), "features",
                                       f"video features for clip.views {list(config.clip.views)}",
                                       f"video features {list(meta.video_keys)}"))
    for view in views:
        lerobot.check_videos(meta, view)
    pref = load_preference_data(config.dataset, segment_length=config.segment_length, stride=config.stride,
                                n_train=config.n_train_pool, n_val=config.n_val, n_test=0, teacher="oracle",
                                seed=config.pool_seed, split_seed=config.split_seed)
    seg = pref.segments
    repo_id = lerobot.repo_id_of(meta)

    def frames(row, view):
        ep = meta.episodes[int(seg.episode_index[row])]
        times = (int(seg.start[row]) + np.arange(seg.length)) / meta.fps
        return clips.upscale(lerobot.camera_frames(meta, ep, view, times), config.clip.size)

    def clip_key(row, view):
        return {"kind": "lerobot", "dataset": repo_id, "revision": lerobot.revision_of(meta),
                "path": os.path.abspath(root), "episode": seg.episode_ids[int(seg.episode_index[row])],
                "start": int(seg.start[row]), "length": int(seg.length), "camera": view, "size": int(config.clip.size)}

    return Sources(seg, (pref.train.idx_a, pref.train.idx_b), (pref.val.idx_a, pref.val.idx_b), None,
                   views, frames, clip_key)


def annotator_table(config) -> dict:
    return {a: {"source": "real", "kind": "human", "interface_version": INTERFACE_VERSION}
            for a in config.annotators}


def load_queue(config) -> tuple[Sources, list]:
    """Data and queue of a config; reads only (nothing is written yet)."""
    src = {"sim": sim_sources, "oxe": oxe_sources, "lerobot": lerobot_sources}[config.source](config)
    items = pair_queue.build_queue(src.segments, src.train, src.val, n_pairs=config.n_pairs,
                                   val_share=config.val_share, method=config.method, seed=config.seed,
                                   gold=src.gold, gold_rate=config.gold_rate)
    return src, items


def open_session(config, workdir: str, src: Sources, items: list) -> LabelSession:
    """The session over `<workdir>/labels.jsonl` (created, or resumed when it exists)."""
    lerobot = None
    if config.source == "lerobot":
        from rlhf_jax.data import lerobot as lerobot_data  # pylint: disable=g-import-not-at-top
        info = lerobot_data.dataset_info(lerobot_data.parse_dataset(config.dataset))
        lerobot = {"repo_id": info["repo_id"], "revision": info["revision"]}
    appender = LabelAppender(os.path.join(workdir, LABELS_FILE), length=int(src.segments.length),
                             annotators=annotator_table(config), lerobot=lerobot,
                             meta={"interface_version": INTERFACE_VERSION, "source": config.source,
                                   "dataset": config.dataset or config.oxe.name, "seed": int(config.seed),
                                   # The free-text questions, so a reader tells their rubric answers
                                   # from the objectives' (rlhf_jax.labels.rubric_objectives).
                                   "rubric": list(config.rubric)})
    return LabelSession(items, src.segments, appender, interface_version=INTERFACE_VERSION,
                        confidence_levels=config.confidence_levels,
                        rubric=tuple(config.rubric) + tuple(config.get("objectives", ())))


def tokens_for(config, workdir: str) -> dict | None:
    """annotator -> token, or None when bound to 127.0.0.1 (tokens kept across a resume)."""
    if config.host == LOCALHOST:
        return None
    path = os.path.join(workdir, "tokens.json")
    if config.tokens:
        return dict(zip(config.annotators, config.tokens))
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    tokens = {a: secrets.token_urlsafe(24) for a in config.annotators}
    checkpoint.atomic_write_json(path, tokens)
    os.chmod(path, 0o600)
    return tokens


def bind_listening_socket(config, config_file: str) -> socket.socket:
    """A socket bound to (host, port) and listening, or one ConfigError line naming the field: a
    bad host or a port in use is found before the workdir, the label file or a clip is written.
    Listening before the address is printed means a browser that connects while the server is
    still starting waits in the backlog instead of being refused; port 0 takes any free port."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(config.host, config.port, type=socket.SOCK_STREAM)[0]
    except (OSError, UnicodeError) as e:
        cli.fail(config_file, "host", "an address this machine can resolve", f"{config.host!r} ({e})")
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        field = "port" if e.errno == errno.EADDRINUSE else "host"
        cli.fail(config_file, field, "an address and port free to listen on",
                 f"{config.host}:{config.port} ({e.strerror or e})")
    sock.listen(2048)
    return sock


def _body(inv: cli.Invocation) -> None:
    import uvicorn  # pylint: disable=g-import-not-at-top
    from experiments import label_app  # pylint: disable=g-import-not-at-top
    config, config_file = inv.config, inv.config_file
    validate(config, config_file)
    # The port may change between sessions of one labelling run (the old one may be taken).
    cli.check_workdir(inv.workdir, inv.resume, config, ignore=("port",))
    sock = bind_listening_socket(config, config_file)  # before anything is written
    src, items = load_queue(config)
    checkpoint.prepare_run_dir(inv.workdir, config.to_json(indent=2, sort_keys=True), inv.resume,
                               error=cli.ConfigError)
    session = open_session(config, inv.workdir, src, items)
    tokens = tokens_for(config, inv.workdir)
    app = label_app.make_app(session, src, clips.ClipCache(os.path.join(inv.workdir, "clips"), config.clip.fps),
                             tokens=tokens, show_gold_accuracy=config.show_gold_accuracy)
    threading.Thread(target=app.state.warm, daemon=True).start()
    server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, log_level="warning"))
    cli.log(f"{len(session.items)} items ({sum(it.gold for it in session.items)} gold), "
            f"{len(session.answers)} answers already in {session.appender.path}")
    host, port = sock.getsockname()[:2]
    for a in session.annotators():
        query = f"?annotator={a}" + (f"&token={tokens[a]}" if tokens else "")
        cli.log(f"labelling page for {a}: http://{host}:{port}/{query}")
    server.run(sockets=[sock])


main = functools.partial(cli.run_main, body=_body, resumable=True)

if __name__ == "__main__":
    sys.exit(main(sys.argv))
