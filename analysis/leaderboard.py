"""The leaderboard of a benchmark suite: every family ranked on the same budget, mean and
95% CI over seeds, per dataset.

    python -m analysis.leaderboard standard --scale cpu [--runs runs] [--out DIR] [--wandb offline]

Columns: reconstruction (MSE, PSNR, SSIM on the clean test set), denoising MSE at the
suite's noise level, linear-probe and kNN accuracy on the codes, the test negative
log-likelihood (nats, importance-sampled; binarized MNIST, families with a posterior and a
decoder likelihood, ranked among themselves), the sample-quality score
(Frechet distance in the suite's feature network of samples from an ex-post GMM of the
training codes, the same sampler for every family; a VAE's prior samples in a column of
their own; beside each, the mean of its runs' bootstrap intervals), parameters and seconds
per epoch. The best family of each column is marked, and so is every family whose interval
overlaps the best one's (a tie: the data cannot tell them apart). Families are ranked by
their mean rank over the ranked columns, each quantity once (PSNR, not MSE too; the GMM
samples, not the prior's). Only comparable, working families are ranked: one whose runs
collapsed, or whose code has another size than the suite's, is shown with the reason and no
rank. A family that cannot generate (no decoder of a code: `pool_ae`) takes the last place of
the sample column, tied with any other that cannot. Writes `leaderboard.md`, `.csv`, `.tex`
and `leaderboard.html` (with a Pareto figure: test MSE against parameters) under `--out`.
"""
from __future__ import annotations

import argparse
import html
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.load import load_local, unreadable_note
from analysis import tables
from analysis.page import CSS, SELF_CHECK
from analysis.tables import ci95, collapsed_runs, one_per_seed
from bench.core.errors import UsageError, exit_usage

# (column, label, True when higher is better); RANKED: the columns the mean rank counts, each
# quantity once (MSE is shown beside PSNR, its per-image log; the prior's samples only a VAE has).
QUALITY = [("test/mse", "MSE", False), ("test/psnr", "PSNR", True), ("test/ssim", "SSIM", True),
           ("denoise", "denoise MSE", False), ("probe/linear_acc", "probe acc", True),
           ("probe/knn_acc", "kNN acc", True), ("gen_fd", "sample FD (GMM)", False),
           ("prior_fd", "prior FD (VAE)", False), ("test/nll", "test NLL", False)]
# test/nll: -log p(x) by importance sampling (--eval nll), ranked among the families that have one
RANKED = {"test/psnr", "test/ssim", "denoise", "probe/linear_acc", "probe/knn_acc", "gen_fd", "test/nll"}
COST = [("params", "params"), ("s_per_epoch", "s/epoch")]
SAMPLED = {"gen_fd": "gmm", "prior_fd": "prior"}  # FD columns: their sampler, whose bootstrap interval is shown


def suite_frame(runs_dir: str, suite: dict, scale: str) -> pd.DataFrame:
    """The suite's finished runs, with the derived columns the table shows."""
    from bench.suite.standard import sweep_name

    frame = load_local(runs_dir, sweep_name(suite, scale))
    if not len(frame):
        raise UsageError(f"no runs of suite {suite['name']} at scale {scale} in {runs_dir}/; run "
                         f"`python -m bench.suite {suite['name']} --scale {scale}` first")
    unreadable = frame.attrs.get("unreadable", [])
    frame = frame[frame["status"] == "finished"].copy()
    frame.attrs["unreadable"] = unreadable
    sigma = suite.get("denoise_sigma")
    frame["denoise"] = frame.get(f"denoise/mse@{sigma:g}") if sigma is not None else np.nan
    missing = pd.Series(np.nan, index=frame.index)
    for col, sampler in SAMPLED.items():  # the GMM: one sampler for every family
        for end in ("", "_lo", "_hi"):
            frame[col + end] = frame.get(f"sample/{sampler}_fd{end}", missing)
    frame["s_per_epoch"] = pd.to_numeric(frame.get("train_seconds"), errors="coerce") / \
        pd.to_numeric(frame.get("epochs_done"), errors="coerce")
    frame["collapsed"] = collapsed_runs(frame)
    return frame


def family_rows(frame: pd.DataFrame, suite: dict, dataset: str) -> pd.DataFrame:
    """One row per family on one dataset: mean and CI of each column, seeds, notes."""
    latent = (suite["datasets"][dataset] or {}).get("latent_dim")
    rows = []
    for family, g in frame[frame["dataset"] == dataset].groupby("model", sort=True):
        g, _ = one_per_seed(g)
        row = {"family": family, "seeds": len(g), "backbone": backbone_of(g, suite, family)}
        for col, _, _ in QUALITY + [(c, lab, False) for c, lab in COST]:
            vals = pd.to_numeric(g[col], errors="coerce").to_numpy(dtype=float) if col in g else np.array([np.nan])
            row[col] = float(np.nanmean(vals)) if np.isfinite(vals).any() else np.nan
            row[f"{col}_ci"] = ci95(vals) or 0.0
        for col in SAMPLED:  # each run's own bootstrap interval, the mean over the seeds
            ends = [pd.to_numeric(g[col + e], errors="coerce").mean() for e in ("_lo", "_hi")]
            row[f"{col}_lo"], row[f"{col}_hi"] = ends if all(e == e for e in ends) else (np.nan, np.nan)
        notes, unranked = [], []
        code = pd.to_numeric(g.get("probe/latent_dim"), errors="coerce").dropna() if "probe/latent_dim" in g else []
        if latent is not None and len(code) and int(code.iloc[0]) != int(latent):
            unranked.append(f"its code has {int(code.iloc[0])} values, not the suite's {latent} (the latent size "
                            f"does not set it): not comparable on the code columns")
        if g["collapsed"].any():
            unranked.append(f"{int(g['collapsed'].sum())}/{len(g)} collapsed (their numbers describe a constant)")
        sampled = "eval" not in g or any("sample" in (e or []) for e in g["eval"] if isinstance(e, (list, tuple)))
        if math.isnan(row["gen_fd"]) and sampled:  # not where the suite did not score samples (binarized MNIST)
            notes.append("cannot generate")
        row["ranked"] = not unranked
        row["notes"] = "; ".join(([f"unranked: {'; '.join(unranked)}"] if unranked else []) + notes)
        rows.append(row)
    return pd.DataFrame(rows)


def backbone_of(runs: pd.DataFrame, suite: dict, family: str) -> str:
    """`shared` where every run of the family built on the suite's shared conv stack (its
    `channels` are the backbone's for the run's input size), else `own`: an architecture in its
    own right (the suite's `own` list), a family without a conv stack, or `--backbone own`."""
    backbone = suite.get("backbone") or {}
    widths = {int(k): [int(c) for c in v] for k, v in (backbone.get("channels") or {}).items()}
    if family in (backbone.get("own") or []) or "channels" not in runs or "input_shape" not in runs:
        return "own"
    for channels, shape in zip(runs["channels"], runs["input_shape"]):
        if not isinstance(channels, (list, tuple)) or not isinstance(shape, str) or \
                [int(c) for c in channels] != widths.get(int(shape.split("x")[-1])):
            return "own"
    return "shared"


def rank(table: pd.DataFrame) -> pd.DataFrame:
    """Best and tied marks per quality column among the ranked families, their mean rank over
    the ranked columns, sorted by it; unranked families (`ranked` False) follow, without a rank."""
    ranked = table["ranked"].astype(bool) if "ranked" in table else pd.Series(True, index=table.index)
    ranks = []
    for col, _, higher in QUALITY:
        if col not in table:
            table[col], table[f"{col}_ci"] = np.nan, 0.0
        vals = table[col].where(ranked)
        if vals.notna().sum() == 0:
            table[f"{col}_mark"] = ""
            continue
        if col == "gen_fd":  # the stated rule: a family that cannot generate takes the last place in the column
            cannot = ranked & table["notes"].astype(str).str.contains("cannot generate") if "notes" in table else False
            ranks_of = vals.where(~cannot, math.inf if not higher else -math.inf)
        else:
            ranks_of = vals
        best = vals.idxmax() if higher else vals.idxmin()
        lo, hi = vals - table[f"{col}_ci"], vals + table[f"{col}_ci"]
        tied = (lo <= hi[best]) & (hi >= lo[best])
        table[f"{col}_mark"] = ["best" if i == best else "tie" if t and pd.notna(vals[i]) else ""
                                for i, t in tied.items()]
        if col in RANKED:
            ranks.append(ranks_of.rank(ascending=not higher, method="average"))
    table["rank"] = pd.concat(ranks, axis=1).mean(axis=1).where(ranked) if ranks else np.nan
    return table.sort_values(["rank", "family"], na_position="last").reset_index(drop=True)


def _cell(row, col, style: str) -> str:
    v, ci = row[col], row.get(f"{col}_ci", 0.0)
    if v != v:
        return "-"
    digits = 4 if abs(v) < 10 else 2 if abs(v) < 1000 else 0
    text = f"{v:.{digits}f}" + (f" ± {ci:.{digits}f}" if round(ci, digits) > 0 else "")
    lo, hi = row.get(f"{col}_lo", np.nan), row.get(f"{col}_hi", np.nan)
    if col in SAMPLED and lo == lo:
        text += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    mark = row.get(f"{col}_mark", "")
    if style == "md":
        return f"**{text}**" if mark == "best" else f"_{text}_" if mark == "tie" else text
    if style == "tex":
        text = text.replace("±", r"$\pm$")
        return rf"\textbf{{{text}}}" if mark == "best" else rf"\underline{{{text}}}" if mark == "tie" else text
    text = html.escape(text).replace(" ± ", "&nbsp;±&nbsp;").replace(", ", ",&nbsp;")  # nor wraps inside
    return f"<b>{text}</b>" if mark == "best" else f"<u>{text}</u>" if mark == "tie" else text


def _shown(table: pd.DataFrame, style: str) -> tuple[list[str], list[list[str]]]:
    head = ["rank", "family", "backbone", "seeds"] + [lab for _, lab, _ in QUALITY] + ["params", "s/epoch", "notes"]
    body = []
    for _, r in table.iterrows():
        cost = [f"{r['params']:,.0f}" if r["params"] == r["params"] else "-",
                f"{r['s_per_epoch']:.2f}" if r["s_per_epoch"] == r["s_per_epoch"] else "-"]
        text = html.escape if style == "html" else str  # number cells are escaped by _cell
        body.append([f"{r['rank']:.2f}" if r["rank"] == r["rank"] else "-", text(r["family"]), r.get("backbone", "own"),
                     str(r["seeds"])] + [_cell(r, c, style) for c, _, _ in QUALITY]
                    + cost + [text(r["notes"])])
    return head, body


# The cells are rendered per output first (best in bold, `±`, marks for collapsed or unranked
# rows); the project's one markdown writer and pandas' LaTeX writer then lay them out.
def to_markdown(table: pd.DataFrame) -> str:
    head, body = _shown(table, "md")
    return tables.to_markdown(pd.DataFrame(body, columns=head))


def to_latex(table: pd.DataFrame) -> str:
    head, body = _shown(table, "tex")
    esc = lambda s: s.replace("_", r"\_").replace("%", r"\%")  # noqa: E731
    cells = [[esc(c) if "\\" not in c else c for c in r] for r in body]
    return tables.to_latex(pd.DataFrame(cells, columns=[esc(h) for h in head]), escape=False)


def to_csv(tables: dict) -> str:
    """Every dataset's rows, numbers unrounded: mean, CI half-width and mark per column."""
    cols = ["rank", "family", "backbone", "seeds"] + [x for c, _, _ in QUALITY for x in (c, f"{c}_ci", f"{c}_mark")] + \
        [f"{c}_{end}" for c in SAMPLED for end in ("lo", "hi")] + ["params", "s_per_epoch", "notes"]
    return pd.concat([t[cols].assign(dataset=d) for d, t in tables.items()]).to_csv(index=False)


def to_html_table(table: pd.DataFrame) -> str:
    head, body = _shown(table, "html")
    return ("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" +
            "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in body) + "</table>")


def pareto_figure(table: pd.DataFrame, dataset: str, path: Path) -> Path | None:
    """Test MSE against parameters, one point per family (with its CI), each family its own
    marker and colour named in the legend (families of one size set side by side), unranked
    ones hollow and named so; the Pareto front of the ranked families (no other both smaller
    and better) joined by a line."""
    from matplotlib.ticker import EngFormatter, LogLocator, NullFormatter

    from analysis.plots import plt

    t = table.dropna(subset=["params", "test/mse"]).sort_values(["params", "test/mse"]).reset_index(drop=True)
    if not len(t):
        return None
    ranked = t["ranked"].astype(bool) if "ranked" in t else pd.Series(True, index=t.index)
    fig, ax = plt.subplots(figsize=(8.2, 4.6))
    markers, colours = "osD^v<>pPX*h", plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for _, g in t.groupby("params"):  # one size (the conv AEs on the shared backbone): side by side
        for k, i in enumerate(g.index):
            t.loc[i, "x"] = t.loc[i, "params"] * 1.06 ** (k - (len(g) - 1) / 2)
    for i, r in t.iterrows():
        colour = colours[i % len(colours)]
        ax.errorbar(r["x"], r["test/mse"], yerr=r["test/mse_ci"], fmt=markers[i % len(markers)], ms=6, capsize=3,
                    color=colour, mfc=colour if ranked[i] else "none",
                    label=r["family"] + ("" if ranked[i] else " (unranked)"))
    front, best = [], math.inf
    for i, r in t[ranked].iterrows():
        if r["test/mse"] < best:
            front.append(r)
            best = r["test/mse"]
    if front:
        ax.plot([r["x"] for r in front], [r["test/mse"] for r in front], "-", color="tab:red", lw=1,
                label="Pareto front (ranked)")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # labels within a decade too
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("parameters")
    ax.set_ylabel("test MSE (lower is better)")
    ax.set_title(f"{dataset}: reconstruction against size (hollow: unranked)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # off the data
    ax.grid(alpha=0.3)
    ax.margins(x=0.1, y=0.1)
    ax.set_ylim(bottom=0)  # an MSE is never negative
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def build(runs_dir: str, suite: dict, scale: str) -> tuple[dict[str, pd.DataFrame], str | None]:
    """(dataset -> ranked family table, a note naming unreadable runs or None)."""
    frame = suite_frame(runs_dir, suite, scale)
    tables = {d: rank(family_rows(frame, suite, d)) for d in suite["datasets"] if (frame["dataset"] == d).any()}
    if not tables:
        raise UsageError(f"no finished runs of suite {suite['name']} at scale {scale} in {runs_dir}/")
    return tables, unreadable_note(frame)


def write(tables: dict, suite: dict, scale: str, out: Path, note: str | None) -> list[Path]:
    """leaderboard.md, .csv, .tex and .html (with one Pareto figure per dataset) under `out`."""
    import base64

    out.mkdir(parents=True, exist_ok=True)
    from bench.suite.standard import budget_text

    budget = budget_text(suite, scale, list(tables))
    lead = (f"Suite {suite['name']} at scale {scale}: {budget} for every family; mean ± 95% CI over seeds "
            f"(Student t); beside a sample FD, in brackets, the mean of its runs' own 95% bootstrap intervals (the error "
            f"from the number of images scored). Bold: best of the column; underlined or italic: its interval overlaps the best's (a tie). "
            f"Rank: mean rank over {', '.join(lab for c, lab, _ in QUALITY if c in RANKED)} (each quantity once), "
            f"among the comparable, working families; the others are shown unranked with the reason. A family "
            f"that cannot generate takes the last place of the sample column (tied with any other that cannot). "
            f"Backbone: "
            f"`shared` families build on the same conv encoder and decoder and differ in objective and latent "
            f"head only; `own` marks an architecture of its own (or a family without a conv stack)."
            + (f" {note}" if note else ""))
    md = [f"# Leaderboard: {suite['name']} ({scale})", "", lead]
    tex, parts = [], [f"<!doctype html><html><head><meta charset='utf-8'><title>leaderboard "
                               f"{html.escape(suite['name'])}</title><style>{CSS}</style></head><body>"
                               f"<h1>Leaderboard: {html.escape(suite['name'])} ({scale})</h1><p>{html.escape(lead)}</p>"]
    for dataset, table in tables.items():
        latent = (suite["datasets"][dataset] or {}).get("latent_dim")
        md += ["", f"## {dataset} (latent size {latent})", "", to_markdown(table)]
        tex += [f"% {dataset} (latent size {latent})", to_latex(table)]
        png = pareto_figure(table, dataset, out / f"pareto_{dataset}.png")
        parts.append(f"<h2>{html.escape(dataset)} (latent size {latent})</h2>" + to_html_table(table))
        if png:
            parts.append(f"<p><img alt='Pareto front, {html.escape(dataset)}' src='data:image/png;base64,"
                         f"{base64.b64encode(png.read_bytes()).decode()}'></p>")
    paths = [out / "leaderboard.md", out / "leaderboard.csv", out / "leaderboard.tex", out / "leaderboard.html"]
    paths[0].write_text("\n".join(md) + "\n")
    paths[1].write_text(to_csv(tables))
    paths[2].write_text("\n\n".join(tex) + "\n")
    paths[3].write_text("\n".join(parts) + SELF_CHECK + "</body></html>\n")
    return paths


def log_wandb(tables: dict, suite: dict, scale: str, mode: str) -> str:
    """The leaderboard as one `wandb.Table` per dataset, in a run of the suite's W&B group."""
    from bench.records.track import log_tables
    from bench.suite.standard import sweep_name

    shown = {}
    for dataset, table in tables.items():
        head, body = _shown(table, "plain")
        shown[f"leaderboard/{dataset}"] = (head, [[html.unescape(c) for c in r] for r in body])
    return log_tables(shown, group=sweep_name(suite, scale), name=f"leaderboard-{suite['name']}-{scale}",
                      job_type="leaderboard", mode=mode)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.leaderboard", description=__doc__.splitlines()[0])
    p.add_argument("suite", help="a suite under sweeps/suite/ (e.g. standard)")
    p.add_argument("--scale", default="tiny", choices=("tiny", "cpu", "full"))
    p.add_argument("--runs", default="runs", help="the local run store")
    p.add_argument("--out", default=None, help="folder for the tables and the HTML page "
                                               "(default reports/leaderboard_<suite>_<scale>)")
    p.add_argument("--wandb", default="disabled", choices=("online", "offline", "disabled"),
                   help="also log the leaderboard as a wandb.Table in the suite's W&B group")
    p.error = lambda msg: exit_usage(p.prog, UsageError(msg))
    args = p.parse_args(argv)
    try:
        from bench.suite.standard import load_suite

        suite = load_suite(args.suite)
        tables, note = build(args.runs, suite, args.scale)
        out = Path(args.out or f"reports/leaderboard_{args.suite}_{args.scale}")
        paths = write(tables, suite, args.scale, out, note)
    except UsageError as e:
        exit_usage(p.prog, e)
    for dataset, table in tables.items():
        print(f"\n{dataset}\n" + to_markdown(table))
    print(f"\nwrote {', '.join(str(p) for p in paths)}")
    if args.wandb != "disabled":
        print(log_wandb(tables, suite, args.scale, args.wandb))
    return 0


if __name__ == "__main__":
    sys.exit(main())
