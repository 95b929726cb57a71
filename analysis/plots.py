"""Comparison figures from recorded runs (PNG).

    python -m analysis.plots [--runs runs/ | --wandb ENTITY/PROJECT] [--sweep NAME]
        [--group-by KEYS] [--metrics M] [--x KEY] --out DIR

- curves.png: train (dashed) and val (solid) curves per configuration, mean over seeds
  with a 95% CI band; like with like per panel (per-pixel MSE for every autoencoder, a
  VAE's ELBO terms apart, accuracy, Dice).
- side_by_side.png: the same test images reconstructed by each configuration, in the tables' order.
- denoise_<metric>.png: configurations x test noise sigma heatmap (the denoise tool).
- <metric>_vs_<x>.png: metric against a numeric hyperparameter (noise_level, mask_ratio, ...), mean and 95% CI.
- pareto_<metric>.png: metric against parameter count, the Pareto front highlighted."""
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

from analysis.load import in_order, load_runs, require_runs  # noqa: E402
from analysis.tables import _fmt, add_common, build_table, key_list, resolve_group  # noqa: E402
from bench.core.errors import UsageError, exit_usage  # noqa: E402

warnings.filterwarnings("ignore", message="Tight layout not applied")

HIGHER_IS_BETTER = ("psnr", "ssim", "snr", "acc", "dice", "iou")


def label(row, group_by) -> str:
    return ", ".join(f"{k}={_fmt(row[k])}" for k in group_by)


def configurations(frame: pd.DataFrame, group_by: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """(label, runs) per configuration, in the tables' order: numbers as numbers (300,5 first)."""
    if not len(frame):
        return []
    keyed = frame.assign(_key=frame.apply(lambda r: label(r, group_by), axis=1))
    return sorted(keyed.groupby("_key"), key=lambda kg: [in_order(kg[1].iloc[0].get(k)) for k in group_by])


def _panels(frame: pd.DataFrame) -> list[tuple[str, str, pd.Series]]:
    """(term, title, which runs) for the cross-run curves, so one axis only holds numbers of
    one kind: per-pixel MSE for every autoencoder, a VAE's ELBO terms (nats per image) apart
    from the deterministic models' losses, accuracy and Dice on their own."""
    def has(term):
        return frame["history"].map(lambda h: any(f"val/{term}" in r or f"train/{term}" in r for r in h))
    variational = has("kl")
    panels = []
    if has("mse").any():
        panels.append(("mse", "MSE per pixel", has("mse")))
    if variational.any():
        panels += [("loss", "VAE loss (ELBO terms, per image)", variational),
                   ("recon_loss", "VAE reconstruction term", variational), ("kl", "VAE KL term", variational)]
    plain = ~variational & frame["history"].map(
        lambda h: any(r.get("val/loss") != r.get("val/mse") for r in h if "val/loss" in r))
    if plain.any():
        panels.append(("loss", "training objective (non-VAE)", plain))
    for term, title in (("l1", "mean |z| summed over latent units"), ("acc", "accuracy"), ("dice", "Dice")):
        if has(term).any():
            panels.append((term, title, has(term)))
    return panels


def curves(frame: pd.DataFrame, group_by: list[str], path: Path) -> Path | None:
    """Train (dashed) and val (solid) curves per configuration, mean over seeds with a band of
    the 95% CI where there are several seeds; integer epochs; like with like per panel."""
    from matplotlib.ticker import MaxNLocator

    from analysis.tables import ci95

    frame = frame[frame["history"].map(len) > 1]  # a curve needs two epochs; 1-epoch runs have none
    panels = _panels(frame) if len(frame) else []
    if not panels:
        return None
    # At most three panels a row (four as 2x2): a strip of four is illegible on an A4 page
    cols = len(panels) if len(panels) <= 3 else 2 if len(panels) == 4 else 3
    nrows = -(-len(panels) // cols)
    # 3.6-inch panels at 110 dpi: three fit the report's 1,200 px unscaled (9-point text at 13-14 px)
    fig, grid = plt.subplots(nrows, cols, figsize=(3.6 * cols, 3.0 * nrows), squeeze=False)
    for ax in grid.flat[len(panels):]:
        ax.set_visible(False)
    axes = grid.reshape(1, -1)[:, :len(panels)]
    tested = set()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ci, (key, g) in enumerate(configurations(frame, group_by)):
        color = colors[ci % len(colors)]
        for ax, (term, _, which) in zip(axes[0], panels):
            g_here = g[which.reindex(g.index, fill_value=False)]
            if not len(g_here):
                continue
            for split, style in (("val", "-"), ("train", "--"), ("test", ":")):  # test: classifiers, per epoch
                series = [pd.Series({r["epoch"]: r.get(f"{split}/{term}") for r in h}) for h in g_here["history"]]
                df = pd.concat(series, axis=1).astype(float)
                if not df.notna().any().any():
                    continue
                if split == "test":
                    tested.add(term)
                mean = df.mean(axis=1)
                ax.plot(df.index, mean, style, color=color, label=key if split == "val" else None, lw=1.5)
                if split == "val" and df.shape[1] > 1:
                    band = np.array([ci95(row) or 0.0 for row in df.to_numpy()])
                    low = (mean - band).clip(lower=0.0 if (df.fillna(0) >= 0).all().all() else None)  # KL >= 0
                    ax.fill_between(df.index, low, mean + band, color=color, alpha=0.15, lw=0)
    for ax, (term, title, _) in zip(axes[0], panels):
        lines = "solid val, dashed train" + (", dotted test" if term in tested else "")
        ax.set_title(f"{title}\n({lines};\nband: 95% CI over seeds)", fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=9, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def side_by_side(frame: pd.DataFrame, group_by: list[str], path: Path, n_images: int = 5,
                 title: str = "the same test images reconstructed by each configuration") -> Path | None:
    """One row per configuration (its lowest finished seed), the same first test images in
    each column, from the `recon_fixed.npz` each local run records; None when fewer than two
    configurations have one."""
    from bench.records.store import RunDir

    done = frame[(frame["status"] == "finished") & (frame["source"] == "local")] if len(frame) else frame
    rows, top = [], None
    for key, g in configurations(done, group_by):
        g = g.sort_values("seed") if "seed" in g else g
        for _, r in g.iterrows():
            arrays = _recon_arrays(Path(r["path"]) / RunDir.RECON_ARRAYS)
            if arrays is None:
                continue
            top = top or [("original", arrays["original"])] + \
                ([("noisy input", arrays["noisy"])] if "noisy" in arrays else [])
            out = arrays.get("denoised", arrays.get("reconstruction"))
            if out is not None and out.shape[1:] == top[0][1].shape[1:]:
                rows.append((key, out))
            break
    if len(rows) < 2:
        return None
    allrows = top + rows
    n = min(n_images, min(a.shape[0] for _, a in allrows))
    fig, axes = plt.subplots(len(allrows), n, figsize=(1.05 * n + 2.4, 1.05 * len(allrows) + 0.5), squeeze=False)
    for i, (name, a) in enumerate(allrows):
        for j in range(n):
            img = a[j].transpose(1, 2, 0)
            ax = axes[i][j]
            ax.imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _recon_arrays(path: Path) -> dict | None:
    """A run's recorded reconstruction arrays (uint8, N x C x H x W), or None; never unpickles."""
    if path.is_symlink() or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception:
        return None
    ok = "original" in arrays and all(a.dtype == np.uint8 and a.ndim == 4 for a in arrays.values())
    return arrays if ok else None


def colour_range(values: np.ndarray, least: float = 0.05) -> dict:
    """vmin/vmax of a colour scale spanning at least `least` of the values' magnitude, so that
    near-equal values (0.076970 and 0.076975) look equal instead of filling the whole scale."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return {}
    lo, hi = float(finite.min()), float(finite.max())
    span = max(hi - lo, least * max(abs(lo), abs(hi)), 1e-12)
    mid = (lo + hi) / 2
    return {"vmin": mid - span / 2, "vmax": mid + span / 2}


def denoise_rows(summary: pd.DataFrame, group_by: list[str], metric: str):
    """(row names, sigma columns, values) of the heatmap (None without numbers); first, the noisy input's own."""
    cols = sorted((c for c in summary.columns
                   if c.startswith(f"denoise/{metric}@") and not c.endswith(("_ci", "_values", "_sampling"))),
                  key=lambda c: float(c.split("@")[1]))
    if not cols or summary[cols].isna().all().all():
        return None
    grid = summary[cols].astype(float).to_numpy()
    names = [label(r, group_by) for _, r in summary.iterrows()]
    inputs = [c.replace(f"denoise/{metric}@", "denoise/input_psnr@") for c in cols]
    if metric in ("mse", "psnr") and all(c in summary for c in inputs):  # the score of doing nothing, first
        psnr = summary[inputs].astype(float).mean(axis=0).to_numpy()  # of images in [0, 1]
        grid = np.vstack([psnr if metric == "psnr" else 10 ** (-psnr / 10), grid])
        names = ["noisy input itself"] + names
    return names, cols, grid


def denoise_heatmap(summary: pd.DataFrame, group_by: list[str], metric: str, path: Path) -> Path | None:
    """Configurations (rows) x test noise sigma (columns), the denoise tool's `denoise/<metric>@s`
    averaged over seeds, with a colour bar (`denoise_rows`): clean-vs-noisy at a glance."""
    rows = denoise_rows(summary, group_by, metric)
    if rows is None:
        return None
    names, cols, grid = rows
    fig, ax = plt.subplots(figsize=(1.2 * len(cols) + 3.5, 0.45 * len(names) + 1.6))
    cmap = "viridis" if metric in HIGHER_IS_BETTER else "viridis_r"
    scale = grid[1:] if names[0] == "noisy input itself" and len(grid) > 1 else grid  # the models set the colours
    im = ax.imshow(grid, cmap=cmap, aspect="auto", **colour_range(scale))
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if np.isfinite(grid[i, j]):
                r, g, b, _ = im.cmap(im.norm(grid[i, j]))
                ax.text(j, i, f"{grid[i, j]:.3g}", ha="center", va="center", fontsize=7,
                        color="black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white")
    ax.set_xticks(range(len(cols)), [f"sigma {c.split('@')[1]}" for c in cols], fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("test-time noise")
    fig.colorbar(im, ax=ax, label=f"test {metric} ({'higher' if metric in HIGHER_IS_BETTER else 'lower'} is better)")
    ax.set_title(f"denoising: test {metric} on clean (sigma 0) and noisy inputs, mean over seeds", fontsize=9)
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
    yerr = s[f"{metric}_ci"].astype(float).fillna(0.0) if f"{metric}_ci" in s else None
    ax.errorbar(s["params"], s[metric], yerr=yerr, fmt="o", color="tab:gray", ms=5, capsize=3,
                label="configurations (± 95% CI)")
    texts = [ax.annotate(label(r, group_by), (r["params"], r[metric]), fontsize=6, alpha=0.8,
                         xytext=(3, 3), textcoords="offset points", annotation_clip=True) for _, r in s.iterrows()]
    ax.margins(x=0.25, y=0.12)  # room for the labels of the outermost points
    if front:
        f = pd.DataFrame(front)
        ax.plot(f["params"], f[metric], "-o", color="tab:red", label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel(metric)
    return _finish(fig, ax, f"{metric} vs parameter count ({'higher' if higher else 'lower'} is better)", path, texts)


def spread_labels(fig, ax, texts) -> None:
    """Move point labels apart until none overlaps another and each lies within the axes:
    a label that would leave the axes on the right goes to the left of its point, and one that
    overlaps a label already placed steps up or down by its own height (greedy, in pixels)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    placed = []
    for t in sorted(texts, key=lambda t: (t.xy[1], t.xy[0])):
        box = t.get_window_extent(renderer)
        dx = 3 if box.x1 <= frame.x1 else -3 - box.width * 72 / fig.dpi  # points
        for k in range(40):
            step = ((k + 1) // 2) * (1 if k % 2 else -1) * (box.height * 72 / fig.dpi + 1)
            t.xyann = (dx, 3 + step)
            box = t.get_window_extent(renderer)
            inside = frame.y0 <= box.y0 and box.y1 <= frame.y1 and frame.x0 <= box.x0 and box.x1 <= frame.x1
            if inside and not any(box.overlaps(b) for b in placed):
                break
        placed.append(box)


def _finish(fig, ax, title: str, path: Path, labels=()) -> Path:
    """Grid, legend and title on a one-axes figure, its point labels spread apart, then write
    the PNG and free it."""
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    if labels:
        spread_labels(fig, ax, labels)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _with_denoise(summary: pd.DataFrame, finished: pd.DataFrame, group_by: list[str]) -> pd.DataFrame:
    """The summary with the denoise tool's per-sigma numbers averaged over seeds added."""
    from analysis.tables import summarise

    cols = [c for c in finished.columns if c.startswith("denoise/") and "@" in c
            and pd.api.types.is_numeric_dtype(finished[c])]
    return summarise(finished, group_by, cols) if cols else summary


def numeric_keys(summary: pd.DataFrame, group_by: list[str]) -> list[str]:
    out = []
    for k in group_by:
        vals = pd.to_numeric(summary[k], errors="coerce")
        if vals.notna().all() and vals.nunique() > 1:
            out.append(k)
    return out


def make_plots(args, out: Path, notes: list | None = None, frame: pd.DataFrame | None = None,
               table: tuple | None = None) -> dict[str, Path]:
    """The comparison figures; a figure that would mislead (one x value, one model size,
    single-epoch curves) is left out and a one-line note in `notes` says why. `frame` and
    `table`: the runs and `build_table`'s answer where the caller has them (a report)."""
    notes = [] if notes is None else notes
    frame = require_runs(load_runs(args.runs, args.wandb, args.sweep), args.runs, args.sweep, args.wandb) \
        if frame is None else frame
    summary, group_by, metrics = table or build_table(args, frame)
    summary = summary[summary["runs"] > 0]  # configurations only stopped runs tried have no numbers to draw
    xs = key_list(args.x) if getattr(args, "x", None) else numeric_keys(summary, group_by)
    if xs and xs[0] not in group_by:
        raise UsageError(f"--x {xs[0]}: not among the group keys; valid: {', '.join(group_by)}")
    try:
        out.mkdir(parents=True, exist_ok=True)  # only once the selection is known to be good
    except OSError as e:
        raise UsageError(f"--out {out}: cannot create it ({e.strerror or type(e).__name__})") from None
    figs = {}
    finished = frame[frame["status"] == "finished"]
    figs["curves"] = curves(finished, resolve_group(frame, group_by), out / "curves.png") if len(finished) else None
    if not figs["curves"]:
        notes.append("no learning curves: every run has a single epoch")
    for x in xs:
        if pd.to_numeric(summary[x], errors="coerce").nunique() < 2:
            n = summary[x].dropna().astype(str).nunique()
            notes.append(f"no {x} plot: " + (f"{x} takes one value in this selection" if n < 2 else
                         f"its {n} values are not numbers, so they have no x axis; the table's rows compare them"))
            continue
        for m in metrics:
            figs[f"{m}_vs_{x}"] = metric_vs(summary, x, m, group_by, out / f"{m.replace('/', '_')}_vs_{x}.png")
    figs["side_by_side"] = side_by_side(finished, resolve_group(frame, group_by), out / "side_by_side.png") \
        if len(finished) else None
    for m in ("mse", "psnr"):
        figs[f"denoise_{m}"] = denoise_heatmap(_with_denoise(summary, finished, group_by), group_by, m,
                                               out / f"denoise_{m}.png")
    for m in metrics[:2]:
        p = pareto(summary, m, group_by, out / f"pareto_{m.replace('/', '_')}.png")
        if p:
            figs[f"pareto_{m}"] = p
        else:
            notes.append(f"no Pareto plot of {m}: every configuration has the same parameter count")
            break
    return {name: p for name, p in figs.items() if p}  # a figure that was not drawn is left out


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
