"""Comparison figures from recorded runs (PNG).

    python -m analysis.plots [--runs runs/ | --wandb ENTITY/PROJECT] [--sweep NAME]
        [--group-by KEYS] [--metrics M] [--x KEY] --out DIR

- curves.png: train (dashed) and val (solid) curves per configuration, one panel per
  recorded term (loss; VAE recon_loss and kl; sparse AE l1), mean over seeds.
- <metric>_vs_<x>.png: metric against a numeric hyperparameter (noise_std,
  mask_ratio, l1_lambda, latent_dim, ...), mean and 95% CI over seeds.
- pareto_<metric>.png: metric against parameter count, the Pareto front highlighted.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.tables import _fmt, add_common, build_table, resolve_group  # noqa: E402
from analysis.load import load_runs, require_runs  # noqa: E402
from bench.errors import UsageError, exit_usage  # noqa: E402

warnings.filterwarnings("ignore", message="Tight layout not applied")

CURVE_TERMS = ["loss", "recon_loss", "kl", "l1", "acc", "dice"]
HIGHER_IS_BETTER = ("psnr", "ssim", "snr", "acc", "dice", "iou")


def label(row, group_by) -> str:
    return ", ".join(f"{k}={_fmt(row[k])}" for k in group_by)


def curves(frame: pd.DataFrame, group_by: list[str], path: Path) -> Path | None:
    frame = frame[frame["history"].map(len) > 1]  # a curve needs two epochs; 1-epoch runs have none
    terms = [t for t in CURVE_TERMS if any(f"val/{t}" in r or f"train/{t}" in r
                                           for h in frame["history"] for r in h)]
    if not terms:
        return None
    fig, axes = plt.subplots(1, len(terms), figsize=(4.6 * len(terms), 3.6), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    keyed = frame.assign(_key=frame.apply(lambda r: label(r, group_by), axis=1))
    for ci, (key, g) in enumerate(keyed.groupby("_key", sort=True)):
        color = colors[ci % len(colors)]
        for ax, term in zip(axes[0], terms):
            for split, style in (("val", "-"), ("train", "--")):
                series = [pd.Series({r["epoch"]: r.get(f"{split}/{term}") for r in h}) for h in g["history"]]
                df = pd.concat(series, axis=1).astype(float)
                if df.notna().any().any():
                    ax.plot(df.index, df.mean(axis=1), style, color=color,
                            label=key if split == "val" else None, lw=1.5)
    for ax, term in zip(axes[0], terms):
        ax.set_title(f"{term} (solid val, dashed train)", fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def metric_vs(summary: pd.DataFrame, x: str, metric: str, group_by: list[str], path: Path) -> Path:
    rest = [k for k in group_by if k != x]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    groups = summary.groupby(rest, dropna=False) if rest else [((), summary)]
    for key, g in groups:
        g = g.sort_values(x)
        ci = g[f"{metric}_ci"].astype(float).fillna(0.0)
        name = ", ".join(f"{k}={_fmt(v)}" for k, v in zip(rest, key if isinstance(key, tuple) else (key,)))
        ax.errorbar(g[x].astype(float), g[metric], yerr=ci, marker="o", capsize=3, label=name or metric)
    ax.set_xlabel(x)
    ax.set_ylabel(metric)
    if (summary[x].astype(float) > 0).all() and summary[x].astype(float).max() / summary[x].astype(float).min() >= 100:
        ax.set_xscale("log")
    return _finish(fig, ax, f"{metric} vs {x} (mean ± 95% CI over seeds)", path)


def pareto(summary: pd.DataFrame, metric: str, group_by: list[str], path: Path) -> Path | None:
    if "params" not in summary or summary["params"].nunique(dropna=True) < 2:
        return None  # a front needs configurations of different sizes
    higher = metric.split("/")[-1] in HIGHER_IS_BETTER
    s = summary.dropna(subset=[metric, "params"]).sort_values("params")
    sign = -1.0 if higher else 1.0  # minimise sign * metric

    def dominated(r) -> bool:  # another configuration is no larger and strictly better, or smaller and as good
        return any((o["params"] <= r["params"] and sign * o[metric] < sign * r[metric])
                   or (o["params"] < r["params"] and sign * o[metric] <= sign * r[metric])
                   for _, o in s.iterrows())
    front = [r for _, r in s.iterrows() if not dominated(r)]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.scatter(s["params"], s[metric], c="tab:gray", s=25, label="configurations")
    for _, r in s.iterrows():
        ax.annotate(label(r, group_by), (r["params"], r[metric]), fontsize=6, alpha=0.8,
                    xytext=(3, 3), textcoords="offset points", annotation_clip=True)
    ax.margins(x=0.25, y=0.12)  # room for the labels of the outermost points
    if front:
        f = pd.DataFrame(front)
        ax.plot(f["params"], f[metric], "-o", color="tab:red", label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel(metric)
    return _finish(fig, ax, f"{metric} vs parameter count ({'higher' if higher else 'lower'} is better)", path)


def _finish(fig, ax, title: str, path: Path) -> Path:
    """Grid, legend and title on a one-axes figure, then write the PNG and free it."""
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def numeric_keys(summary: pd.DataFrame, group_by: list[str]) -> list[str]:
    out = []
    for k in group_by:
        vals = pd.to_numeric(summary[k], errors="coerce")
        if vals.notna().all() and vals.nunique() > 1:
            out.append(k)
    return out


def make_plots(args, out: Path, notes: list | None = None) -> dict[str, Path]:
    """The comparison figures; a figure that would mislead (one x value, one model size,
    single-epoch curves) is left out and a one-line note in `notes` says why."""
    notes = [] if notes is None else notes
    frame = load_runs(args.runs, args.wandb, args.sweep)
    require_runs(frame, args.runs, args.sweep, args.wandb)
    summary, group_by, metrics = build_table(args)
    xs = [args.x] if getattr(args, "x", None) else numeric_keys(summary, group_by)
    if xs and xs[0] not in group_by:
        raise UsageError(f"--x {xs[0]}: not among the group keys; valid: {', '.join(group_by)}")
    try:
        out.mkdir(parents=True, exist_ok=True)  # only once the selection is known to be good
    except OSError as e:
        raise UsageError(f"--out {out}: cannot create it ({e.strerror or type(e).__name__})") from None
    figs = {}
    finished = frame[frame["status"] == "finished"]
    p = curves(finished, resolve_group(frame, group_by), out / "curves.png") if len(finished) else None
    if p:
        figs["curves"] = p
    else:
        notes.append("no learning curves: every run has a single epoch")
    for x in xs:
        if pd.to_numeric(summary[x], errors="coerce").nunique() < 2:
            notes.append(f"no {x} plot: {x} takes one value in this selection")
            continue
        for m in metrics:
            figs[f"{m}_vs_{x}"] = metric_vs(summary, x, m, group_by, out / f"{m.replace('/', '_')}_vs_{x}.png")
    for m in metrics[:2]:
        p = pareto(summary, m, group_by, out / f"pareto_{m.replace('/', '_')}.png")
        if p:
            figs[f"pareto_{m}"] = p
        else:
            notes.append(f"no Pareto plot of {m}: every configuration has the same parameter count")
            break
    return figs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.plots", description=__doc__.splitlines()[0])
    add_common(p)
    p.add_argument("--x", default=None, help="hyperparameter for metric-vs-x plots (default: numeric group keys)")
    p.add_argument("--out", default="reports/figures", help="output folder (default reports/figures, git-ignored)")
    args = p.parse_args(argv)
    notes: list[str] = []
    try:
        figs = make_plots(args, Path(args.out), notes)
    except UsageError as e:
        exit_usage(p.prog, e)
    except OSError as e:
        exit_usage(p.prog, UsageError(f"--out {args.out}: cannot write figures ({e.strerror or type(e).__name__})"))
    for name, path in figs.items():
        print(f"{name}: {path}")
    for note in notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
