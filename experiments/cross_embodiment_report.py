"""Report of a transfer run: intervals, curves, the seed's claims judged by stated criteria.

  python -m experiments.cross_embodiment_report results/transfer             # summary, claims, plot
  python -m experiments.cross_embodiment_report results/transfer --readme docs/transfer.md   # + its table

Reads results.csv, test_correct.npz and config.json of a workdir and writes summary.json,
claims.json, claims.md and accuracy_vs_n_target.png. Every number has a 95% interval from one
seeds × test-pairs bootstrap (rlhf_jax/evaluation/transfer_stats.py). The transfer tables of
``DOC_PAGE`` (docs/transfer.md) are generated here, between their transfer-table markers, never
typed in.
"""
from __future__ import annotations

import csv
import json
import os
import sys

import numpy as np

from rlhf_jax import checkpoint, scaling
from rlhf_jax.evaluation import transfer_stats as ts
from rlhf_jax.plotting import new_figure, save_figure

README_START, README_END = "<!-- transfer-table:start {} -->", "<!-- transfer-table:end {} -->"
DOC_PAGE = "docs/transfer.md"  # the page holding the committed runs' tables


def readme_block(text: str, workdir: str) -> tuple[int, int]:
    """(start, end) of the markdown block generated from ``workdir`` (named in its markers)."""
    start = text.index(README_START.format(workdir)) + len(README_START.format(workdir))
    return start, text.index(README_END.format(workdir))


def load(workdir: str):
    with open(os.path.join(workdir, "results.csv")) as f:
        rows = list(csv.DictReader(f))
    with open(os.path.join(workdir, "config.json")) as f:
        config = json.load(f)
    with np.load(os.path.join(workdir, "test_correct.npz")) as z:
        arrays = {k: z[k].astype(np.float32) for k in z.files}
    return rows, arrays, config


def _est(point, reps) -> dict:
    return {"estimate": float(point), "ci": ts.interval(reps)}


def _fit(n_values, correct):
    """err = E + A·n^−α through (n, seed) points of a [S, N, T] curve (bootstrap over points)."""
    acc = correct.mean(-1)
    n = np.broadcast_to(np.asarray(n_values, float)[None], acc.shape)
    fit = scaling.fit_power_law(n.ravel(), np.clip(1 - acc.ravel(), 1e-3, None), n_bootstrap=300)
    return {k: fit[k] for k in ("E", "A", "alpha", "E_ci", "A_ci", "alpha_ci")} | {"bootstrap": fit["bootstrap"]}


def model_summary(res: ts.Resampler, arrays: dict, prefix: str, n_values, claims: dict) -> dict:
    """Every reported quantity of one transfer × model, with its interval."""
    get = lambda cond: arrays[prefix + cond]  # noqa: E731
    t_src, t_tgt = get("source_in_domain").shape[-1], get("zero_shot").shape[-1]
    src, src_b = res.accuracy(get("source_in_domain"), f"source:{prefix}{t_src}")
    tgt_set = f"target:{prefix.split('|')[0]}:{t_tgt}"
    zs, zs_b = res.accuracy(get("zero_shot"), tgt_set)
    ft, ft_b = res.accuracy(get("finetune"), tgt_set)
    sc, sc_b = res.accuracy(get("scratch"), tgt_set)
    src, zs, src_b, zs_b = src[0], zs[0], src_b[:, 0], zs_b[:, 0]
    both = lambda f: (f(src, zs, ft, sc), f(src_b, zs_b, ft_b, sc_b))  # noqa: E731
    n_values = list(n_values)
    out = {"source": _est(src, src_b), "zero_shot": _est(zs, zs_b),
           "finetune": {str(n): _est(ft[j], ft_b[:, j]) for j, n in enumerate(n_values)},
           "scratch": {str(n): _est(sc[j], sc_b[:, j]) for j, n in enumerate(n_values)}}
    out["drop_points"] = _est(*both(lambda s, z, f, c: 100 * (s - z)))
    out["drop_relative"] = _est(*both(lambda s, z, f, c: (s - z) / s))
    rec = both(lambda s, z, f, c: (f - z[..., None]) / (s - z)[..., None])
    out["recovery"] = {str(n): _est(rec[0][j], rec[1][:, j]) for j, n in enumerate(n_values)}
    for frac in (0.5, 0.9):
        out[f"n_recover_{int(frac * 100)}"] = _est(
            *both(lambda s, z, f, c, fr=frac: ts.n_to_recover(n_values, f, z, s, fr)))
    eq = both(lambda s, z, f, c: ts.scratch_equivalent(n_values, c, f))
    out["scratch_equivalent"] = {str(n): _est(eq[0][j], eq[1][:, j]) for j, n in enumerate(n_values)}
    save = (ts.label_saving(n_values, eq[0]), ts.label_saving(n_values, eq[1]))
    out["label_saving"] = {str(n): _est(save[0][j], save[1][:, j]) for j, n in enumerate(n_values)}
    a, b = claims["beats"]
    if a in n_values and b in n_values:
        ia, ib = n_values.index(a), n_values.index(b)
        out["finetune_minus_scratch"] = _est(*both(lambda s, z, f, c: f[..., ia] - c[..., ib]))
    out["fit"] = {"finetune": _fit(n_values, get("finetune")), "scratch": _fit(n_values, get("scratch"))}
    return out


def judge(m: dict, claims: dict, axis: str, n_values) -> list[dict]:
    """The seed's claims against one model's summary; each row names its criterion."""
    rows = []

    def row(claim, criterion, q, at_least=None, at_most=None, fmt="{:.3f}"):
        lo, hi = q["ci"]
        rows.append({"claim": claim, "criterion": criterion,
                     "ours": f"{fmt.format(q['estimate'])} [{fmt.format(lo)}, {fmt.format(hi)}]",
                     "verdict": ts.verdict(lo, hi, at_least=at_least, at_most=at_most)})

    lo, hi = claims["drop_points"]
    row("zero-shot drop of 15–25%, as accuracy points", f"drop ∈ [{lo:g}, {hi:g}] points", m["drop_points"],
        lo, hi, "{:.1f}")
    lo, hi = claims["drop_relative"]
    row("zero-shot drop of 15–25%, relative to source accuracy", f"drop / source ∈ [{lo:.0%}, {hi:.0%}]",
        m["drop_relative"], lo, hi, "{:.1%}")
    at, most = claims["recover_at"], claims["most_of_drop"]
    if str(at) in m["recovery"]:
        row("500–1,000 target pairs recover most of the drop", f"recovered at n={at} ≥ {most:.0%}",
            m["recovery"][str(at)], most, None, "{:.0%}")
    if "finetune_minus_scratch" in m:
        a, b = claims["beats"]
        row(f"pretraining + {a:,} target pairs beats {b:,} from scratch",
            f"fine-tune({a}) − scratch({b}) > 0", m["finetune_minus_scratch"], 1e-12, None, "{:+.3f}")
    at = claims["saving_at"]
    if axis == "task" and str(at) in m["label_saving"]:
        row("pretraining on diverse pairs reduces annotation cost by 80% for new tasks",
            f"1 − n/n_scratch at n={at} ≥ {claims['saving']:.0%} (n_scratch clipped to the grid)",
            m["label_saving"][str(at)], claims["saving"], None, "{:.0%}")
    return rows


def summarise(rows: list[dict], arrays: dict, config: dict) -> dict:
    """Per transfer × model: model_summary, its claims and convergence shares."""
    with np.errstate(divide="ignore", invalid="ignore"):  # no drop → recovery undefined (nan/inf)
        return _summarise(rows, arrays, config)


def _summarise(rows, arrays, config):
    n_values, seeds = [int(n) for n in config["n_target"]], config["seeds"]
    res = ts.Resampler(len(seeds), int(config["n_bootstrap"]), seed=int(config["seed"]))
    out = {"n_target": n_values, "seeds": len(seeds), "members": config["members"], "axis": config["axis"],
           "n_bootstrap": int(config["n_bootstrap"]), "criteria": config["claims"], "models": {}}
    for prefix in sorted({k.rsplit("|", 1)[0] + "|" for k in arrays}, key=lambda p: list(arrays).index(p + "zero_shot")):
        m = model_summary(res, arrays, prefix, n_values, config["claims"])
        m["claims"] = judge(m, config["claims"], config["axis"], n_values)
        m["converged"] = converged_fraction(rows, prefix)
        out["models"][prefix[:-1]] = m
    out["order"] = list(out["models"])  # run order; JSON files sort keys
    return out


def converged_fraction(rows: list[dict], prefix: str) -> dict:
    """Share of trained points whose best validation step came before the last quarter of its
    budget (validation had stopped improving), per condition."""
    tr, model = prefix[:-1].split("|")
    out = {}
    for cond in ("finetune", "scratch"):
        sel = [r for r in rows if r["transfer"] == tr and r["model"] == model and r["condition"] == cond]
        by_n = {}
        for r in sel:
            by_n.setdefault(int(r["n_target"]), []).append(float(r["best_step"]) <= 0.75 * float(r["steps"]))
        out[cond] = {str(n): float(np.mean(v)) for n, v in sorted(by_n.items())}
    return out


def _ci(q, fmt="{:.3f}") -> str:
    lo, hi = q["ci"]
    def f(v):
        return "∞" if np.isinf(v) else fmt.format(v)
    return f"{f(q['estimate'])} [{f(lo)}, {f(hi)}]"


def claims_markdown(summary: dict) -> str:
    lines = [f"Criteria fixed in the config before the run; verdicts from 95% intervals "
             f"({summary['seeds']} seeds × {summary['members']} members, {summary['n_bootstrap']} "
             "seeds × test-pairs bootstrap replicates). holds: the whole interval meets the criterion; "
             "fails: none of it does; inconclusive: otherwise.", "",
             "| transfer | model | claim | criterion | ours [95%] | verdict |", "|---|---|---|---|---|---|"]
    for name in summary["order"]:
        m, (tr, model) = summary["models"][name], name.split("|")
        lines += [f"| {tr} | {model} | {c['claim']} | {c['criterion']} | {c['ours']} | **{c['verdict']}** |"
                  for c in m["claims"]]
    return "\n".join(lines) + "\n"


def readme_table(summary: dict) -> str:
    ns = summary["n_target"]
    show = [n for n in (100, 500, 2000) if n in ns]
    head = (["transfer", "model", "source", "zero-shot", "drop (points)"] + [f"fine-tune {n:,}" for n in show]
            + [f"scratch {ns[-1]:,}", "n for 50% / 90% of the drop", f"label saving at {500 if 500 in ns else ns[0]}"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    at = 500 if 500 in ns else ns[0]
    for name in summary["order"]:
        m, (tr, model) = summary["models"][name], name.split("|")
        n50, n90 = (_ci(m[k], "{:,.0f}") for k in ("n_recover_50", "n_recover_90"))
        cells = ([tr, model, _ci(m["source"]), _ci(m["zero_shot"]), _ci(m["drop_points"], "{:.1f}")]
                 + [_ci(m["finetune"][str(n)]) for n in show] + [_ci(m["scratch"][str(ns[-1])]), f"{n50}; {n90}",
                                                                  _ci(m["label_saving"][str(at)], "{:.0%}")])
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| transfer | model | claim (criterion) | ours [95%] | verdict |", "|---|---|---|---|---|"]
    for name in summary["order"]:
        m, (tr, model) = summary["models"][name], name.split("|")
        lines += [f"| {tr} | {model} | {c['claim']} ({c['criterion']}) | {c['ours']} | **{c['verdict']}** |"
                  for c in m["claims"]]
    return "\n".join(lines) + "\n"


def plot(summary: dict, path: str) -> None:
    names = summary["order"]
    ncols = min(3, len(names))
    nrows = -(-len(names) // ncols)
    fig, axes = new_figure(nrows, ncols, figsize=(5.2 * ncols, 3.9 * nrows), squeeze=False)
    ns = np.asarray(summary["n_target"], float)
    grid = np.geomspace(ns[0], ns[-1], 60)
    for ax, name in zip(axes.ravel(), names):
        m = summary["models"][name]
        for cond, color in (("finetune", "C0"), ("scratch", "C1")):
            est = np.array([m[cond][str(n)]["estimate"] for n in summary["n_target"]])
            lo, hi = np.array([m[cond][str(n)]["ci"] for n in summary["n_target"]]).T
            ax.errorbar(ns, est, yerr=[est - lo, hi - est], fmt="o", color=color, capsize=3, label=f"{cond} [95%]")
            fit = m["fit"][cond]
            ax.plot(grid, 1 - scaling.predict(fit, grid), "-", color=color, lw=1,
                    label=f"fit: err = {fit['E']:.2f} + {fit['A']:.2f}·n^-{fit['alpha']:.2f}")
        for cond, color in (("zero_shot", "k"), ("source", "g")):
            q = m[cond]
            ax.axhline(q["estimate"], color=color, ls=":", label=cond.replace("_", "-"))
            ax.axhspan(*q["ci"], color=color, alpha=0.08)
        ax.set_xscale("log")
        ax.set_xlabel("target preference pairs")
        ax.set_ylabel("target test accuracy")
        ax.set_title(name.replace("|", "  "), fontsize=10)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(names):]:
        ax.set_visible(False)
    save_figure(fig, path, dpi=110)


def update_readme(path: str, workdir: str, table: str) -> None:
    text = open(path).read()
    start, end = readme_block(text, workdir)
    checkpoint.atomic_write_text(path, text[:start] + "\n" + table + text[end:])


def write_report(workdir: str, log=print, readme: str | None = None) -> dict:
    rows, arrays, config = load(workdir)
    summary = summarise(rows, arrays, config)
    slim = json.loads(json.dumps(summary, default=float))
    for m in slim["models"].values():
        for fit in m["fit"].values():
            fit.pop("bootstrap")
    checkpoint.atomic_write_json(os.path.join(workdir, "summary.json"), slim)
    table = [dict(transfer=n.split("|")[0], model=n.split("|")[1], **c) for n in summary["order"]
             for c in summary["models"][n]["claims"]]
    checkpoint.atomic_write_json(os.path.join(workdir, "claims.json"), table)
    checkpoint.atomic_write_text(os.path.join(workdir, "claims.md"), claims_markdown(summary))
    plot(summary, os.path.join(workdir, "accuracy_vs_n_target.png"))
    for c in table:
        log(f"[{c['transfer']} {c['model']}] {c['claim']}: {c['ours']} → {c['verdict']}")
    if readme:
        update_readme(readme, os.path.relpath(workdir), readme_table(slim))
    return slim


def main(argv: list[str]) -> int:
    args = [a for a in argv[1:] if not a.startswith("--readme")]
    readme = next((a.split("=", 1)[1] for a in argv[1:] if a.startswith("--readme=")), None)
    if "--readme" in argv:
        readme = argv[argv.index("--readme") + 1]
        args = [a for a in args if a != readme]
    if len(args) != 1 or not os.path.isfile(os.path.join(args[0], "results.csv")):
        print("usage: python -m experiments.cross_embodiment_report WORKDIR [--readme docs/transfer.md] "
              "(WORKDIR: a transfer run's directory with results.csv)", file=sys.stderr)
        return 2
    write_report(args[0], readme=readme)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
