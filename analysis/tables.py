"""Comparison tables: one row per configuration, mean and 95% CI over seeds.

    python -m analysis.tables [--runs runs/ | --wandb ENTITY/PROJECT] [--sweep NAME]
        [--group-by model,noise_level] [--metrics psnr,ssim,probe_acc]
        [--format md|csv|latex|json] [--out FILE]

The CI is the Student-t interval of the mean over seeds (t_{0.975, n-1} s / sqrt(n));
with one seed the single value is shown and no CI. Numbers are the recorded ones.
"""
from __future__ import annotations

import argparse
import difflib
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from analysis.load import (BOOKKEEPING, best_meanings, config_keys, load_runs, require_runs, unreadable_note,
                            varying_keys)
from bench.config.keys import canonical
from bench.core.errors import UsageError, exit_usage

ALIASES = {"probe_acc": "probe/linear_acc", "logreg_acc": "probe/logistic_acc", "logistic_acc": "probe/logistic_acc", "acc": "test/acc",
           "fd": "sample/ex_post_fd"}
DEFAULT_METRICS = ["test/mse", "test/psnr", "test/ssim", "test/acc", "test/dice", "test/iou",
                   "probe/linear_acc", "sample/prior_fd", "sample/ex_post_fd", "best_value"]
INFO = [("params", "params"), ("epochs_done", "epochs"), ("best_epoch", "best epoch"),
        ("train_seconds", "train s"), ("images_per_sec", "img/s")]


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """Recorded numbers: `split/name` metrics, and `best_value` (the best validation value of
    the metric that chose best.pt, the Fashion-MNIST VAE assignment's "optimal loss")."""
    return sorted(c for c in frame.columns if ("/" in c or c == "best_value")
                  and pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]))


def resolve_metrics(frame: pd.DataFrame, names: list[str] | None) -> list[str]:
    return _one_meaning(frame, _resolve_metrics(frame, names), asked=bool(names))


def _one_meaning(frame: pd.DataFrame, metrics: list[str], asked: bool) -> list[str]:
    """`best_value` of runs where it means different things (an AE's MSE, a VAE's ELBO) is one
    column per meaning when asked for by name, and left out of the default columns (with a note)."""
    meanings = best_meanings(frame)
    if "best_value" not in metrics or len(meanings) < 2:
        return metrics
    i = metrics.index("best_value")
    if asked:
        return metrics[:i] + [f"best/{m}" for m in meanings] + metrics[i + 1:]
    print(f"note: best_value left out: the loss that chose best.pt means different things here "
          f"({', '.join(meanings)}); ask for it with --metrics best_value to get a column per meaning",
          file=sys.stderr)
    return metrics[:i] + metrics[i + 1:]


def _resolve_metrics(frame: pd.DataFrame, names: list[str] | None) -> list[str]:
    available = metric_columns(frame)
    if not names:
        picked = [m for m in DEFAULT_METRICS if m in available and frame[m].notna().any()]
        return picked or available[:6]
    out = []
    for name in names:
        cands = [name, ALIASES.get(name, ""), f"test/{name}", f"val/{name}"] + \
            [c for c in available if c.endswith(f"/{name}")]
        hit = next((c for c in cands if c in available), None)
        if hit is None:
            close = difflib.get_close_matches(name, available, n=3)
            raise UsageError(f"unknown metric {name!r}; recorded: {', '.join(available) or 'none'}"
                             + (f" (closest: {', '.join(close)})" if close else ""))
        out.append(hit)
    return out


def resolve_group(frame: pd.DataFrame, keys: list[str] | None) -> list[str]:
    if not keys:
        return varying_keys(frame)
    bad = [k for k in keys if k not in frame.columns or k == "history"]
    if bad:
        valid = sorted(k for k in config_keys(frame) if k in frame.columns)
        raise UsageError(f"unknown group key {bad[0]!r}; valid: {', '.join(valid)}")
    return keys


def ci95(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    if len(values) < 2:
        return None
    return float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))


def one_per_seed(g: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """A configuration's runs with each seed counted once (the latest finished run of a seed
    wins), and how many duplicates were set aside: a repeated seed is not a replicate."""
    if "seed" not in g or g["seed"].isna().all():
        return g, 0
    order = g.sort_values("finished_at") if "finished_at" in g else g
    kept = order.drop_duplicates(subset=["seed"], keep="last")
    return kept.sort_index(), len(g) - len(kept)


def collapsed_runs(g: pd.DataFrame) -> pd.Series:
    """Runs whose model collapsed (`bench.records.health`): its output does not depend on its input
    (judged relative to the inputs' spread, at test time), or a stochastic encoder's
    posterior collapsed (the collapse tool). Their numbers describe a constant, or the prior."""
    from bench.records.health import output_collapsed, posterior_collapsed

    if not len(g):
        return pd.Series(False, index=g.index)
    return g.apply(lambda r: output_collapsed(r) or posterior_collapsed(r), axis=1).astype(bool)


def collapsed_cells(summary: pd.DataFrame) -> list[str]:
    """The `collapsed` column of a table: "2/3 collapsed" per configuration, blank when none."""
    return [f"{c}/{n} collapsed" if c else "" for c, n in zip(summary["collapsed"], summary["runs"])]


def collapse_warning(summary: pd.DataFrame) -> str | None:
    """One line when some configurations collapsed (all of them: said first)."""
    if "collapsed" not in summary or not summary["collapsed"].any():
        return None
    hit, runs = int(summary["collapsed"].sum()), int(summary["runs"].sum())
    # counted as the tables count (one run per seed and configuration), which a status count need not match
    lead = ("every run in the tables collapsed" if hit == runs
            else f"{hit} of the {runs} runs in the tables (one per seed and configuration) collapsed")
    return (f"warning: {lead} (output independent of the input, or a VAE's posterior collapsed): their numbers "
            f"describe a constant image or the prior, not a learned code; see the `collapsed` column; train "
            f"longer, lower --lr or add --batchnorm")


def summarise(frame: pd.DataFrame, group_by: list[str], metrics: list[str]) -> pd.DataFrame:
    """One row per configuration: `<metric>` mean, `<metric>_ci` (NaN with one seed), run count.

    Only finished runs count, each seed once; `duplicates` says how many repeated runs of
    a seed were set aside (they are flagged, never averaged in as extra seeds), `stopped`
    how many runs of the configuration a sweep's early termination ended (never averaged in:
    they trained fewer epochs)."""
    frame = frame[frame["status"].isin(["finished", "stopped"])] if "status" in frame else frame
    rows = []
    keyed = frame.assign(**{k: frame[k].map(lambda v: v if not isinstance(v, list) else tuple(v)) for k in group_by})
    for key, g in keyed.groupby(group_by, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        row_stopped = int((g["status"] == "stopped").sum()) if "status" in g else 0
        g, dups = one_per_seed(g[g["status"] == "finished"] if "status" in g else g)
        g = g.sort_values("seed") if "seed" in g else g
        row = dict(zip(group_by, key))
        row["runs"] = len(g)
        row["seeds"] = ",".join(str(int(s)) for s in sorted(g["seed"].dropna())) if "seed" in g else ""
        row["duplicates"] = dups
        row["stopped"] = row_stopped
        row["collapsed"] = int(collapsed_runs(g).sum())
        for m in metrics:
            vals = g[m].to_numpy(dtype=float) if m in g else np.array([np.nan])
            row[m] = float(np.nanmean(vals)) if np.isfinite(vals).any() else np.nan
            row[f"{m}_ci"] = ci95(vals)
            row[f"{m}_values"] = tuple(float(v) for v in vals if np.isfinite(v))  # per seed, in seed order
            if f"{m}_lo" in g:  # a sample FD's own bootstrap interval
                row[f"{m}_sampling"] = sampling_interval(g, m)
        for col, _ in INFO:
            if col in g:
                row[col] = float(pd.to_numeric(g[col], errors="coerce").mean())
        rows.append(row)
    return pd.DataFrame(rows)


def column_digits(values) -> int:
    """Decimals for a whole column from its largest number (never "11.68" beside "9.3601")."""
    top = max((abs(float(v)) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)
               and math.isfinite(v)), default=0.0)
    return 4 if top < 10 else 2 if top < 1000 else 0


def _fmt(v, ci=None, digits: int | None = None) -> str:
    """A number as a cell (`digits`: the column's, else this value's own); -0.0000 shows as 0.0000."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        if ci is None and digits is None:  # a configuration's value as given: 0.1, lambda = 1e-05 (not 0.1000)
            return f"{v + 0.0:g}"
        digits = column_digits([v]) if digits is None else digits
        s = f"{round(v, digits) + 0.0:.{digits}f}"  # + 0.0: no negative zero
        return s if ci is None or math.isnan(ci) else f"{s} ± {round(ci, digits) + 0.0:.{digits}f}"
    if isinstance(v, tuple):
        return ",".join(str(x) for x in v)
    return str(v)


def seed_columns(summary: pd.DataFrame) -> dict:
    """`n seeds` (how many: the interval's n) and `seed ids` (which), never ids alone: a
    column that reads "0" would say "zero seeds"."""
    ids = summary["seeds"].map(lambda s: str(s) if s == s else "")
    return {"n seeds": ids.map(lambda s: len([x for x in s.split(",") if x])), "seed ids": ids}


def display(summary: pd.DataFrame, group_by: list[str], metrics: list[str]) -> pd.DataFrame:
    """Human-readable table: 'mean ± ci' strings, info columns renamed."""
    out = pd.DataFrame()
    for k in group_by:
        out[k] = summary[k].map(_fmt)
    out["runs"] = summary["runs"]
    if "seeds" in summary:
        out = out.assign(**seed_columns(summary))
    if "duplicates" in summary and summary["duplicates"].any():
        out["duplicate runs set aside"] = summary["duplicates"]
    if "collapsed" in summary and summary["collapsed"].any():
        out["collapsed"] = collapsed_cells(summary)
    if "stopped" in summary and summary["stopped"].any():
        out["stopped early (not averaged)"] = summary["stopped"]
    for m in metrics:
        out[m] = metric_cells(summary, m)
    for col, label in INFO:
        if col in summary:
            integer = col in ("params", "epochs_done", "best_epoch")
            out[label] = summary[col].map(lambda v: "-" if pd.isna(v) else f"{v:,.0f}" if v >= 100 or integer
                                          else f"{v:.1f}")
    return out


def metric_cells(summary: pd.DataFrame, m: str) -> list[str]:
    """A metric's cells: `mean ± CI` over seeds (with the two values where there are two); with
    one seed, a sample FD's own bootstrap interval `[lo, hi]` beside its value."""
    sampling = summary[f"{m}_sampling"] if f"{m}_sampling" in summary else [None] * len(summary)
    digits = 1 if m.endswith("seconds") or m.startswith("time/") else column_digits(summary[m])  # one per column
    return [_fmt(v, c if c is not None else float("nan"), digits) + seed_values_note(vals, digits)
            + (f" [{_fmt(b[0], digits=digits)}, {_fmt(b[1], digits=digits)}]" if (c is None or c != c) and b else "")
            for v, c, vals, b in zip(summary[m], summary[f"{m}_ci"], summary[f"{m}_values"], sampling)]


def sampling_interval(g: pd.DataFrame, metric: str) -> tuple[float, float] | None:
    """A sample FD's own 95% bootstrap interval (`<metric>_lo`, `_hi`: the sampling error from
    the images scored), the mean over the runs; shown where there is one seed and no seed
    interval. None for other metrics."""
    cols = [f"{metric}_lo", f"{metric}_hi"]
    if not all(c in g for c in cols):
        return None
    both = g[cols].apply(pd.to_numeric, errors="coerce").dropna()
    return (float(both[cols[0]].mean()), float(both[cols[1]].mean())) if len(both) else None


def seed_values_note(values, digits: int | None = None) -> str:
    """The per-seed values beside an interval from fewer than three seeds."""
    return f" ({', '.join(_fmt(v, digits=digits) for v in values)})" if len(values) == 2 else ""


def few_seeds_warning(summary: pd.DataFrame) -> str | None:
    """One line when an interval rests on two seeds (Student t = 12.71 with one degree of
    freedom: wide by construction); such cells also show their per-seed values."""
    n = int((summary["runs"] == 2).sum()) if "runs" in summary else 0
    if not n:
        return None
    return (f"warning: {n} configuration(s) have 2 seeds: their ± uses Student t = 12.71 (one degree of "
            f"freedom), so it is wide by construction; their cells show the two values; run a third seed")


def md_cell(value) -> str:
    """A value as one markdown table cell (or line): no `|` or newline that breaks the row, and
    no raw HTML, by markdown's own backslash escapes; no HTML entities (`&amp;` would show)."""
    text = " ".join(str(value).split())
    return text.replace("\\", "\\\\").replace("<", "\\<").replace(">", "\\>").replace("|", "\\|")


def to_markdown(df: pd.DataFrame) -> str:
    """A frame as a markdown table, every cell through `md_cell`: the one markdown writer of the
    project's tables (reports, tables, the leaderboard). Not pandas' `to_markdown`: it needs the
    `tabulate` package, escapes nothing, and pads every cell to its column's width, which costs
    a report limited to 7,500 characters (the assignments' limit) hundreds of them. LaTeX goes
    through pandas' `to_latex` (`to_latex` below)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(md_cell(c) for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    return "\n".join(lines + ["| " + " | ".join(md_cell(r[c]) for c in cols) + " |" for _, r in df.iterrows()])


def to_latex(df: pd.DataFrame, escape: bool = True) -> str:
    """A frame as a booktabs LaTeX tabular, by pandas (`escape=False`: its cells are LaTeX already)."""
    return df.to_latex(index=False, escape=escape, column_format="l" * len(df.columns))


def render(summary, group_by, metrics, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(json.loads(summary.to_json(orient="records")), indent=2)
    if fmt == "csv":  # one value per cell: the per-seed values are in the json
        return summary[[c for c in summary.columns if not c.endswith("_values")]].to_csv(index=False)
    table = display(summary, group_by, metrics)
    return to_latex(table) if fmt == "latex" else to_markdown(table)


def split_keys(frame: pd.DataFrame, group_by: list[str]) -> list[str]:
    """Config keys (beyond the group keys, the seed and bookkeeping) whose value differs
    between finished runs of one group: such runs are not replicates of each other."""
    done = frame[frame["status"] == "finished"] if "status" in frame else frame
    if not len(done) or not group_by:
        return []
    keyed = done.assign(**{k: done[k].map(repr) for k in group_by})
    out = []
    for k in config_keys(frame):
        if k in group_by or k in BOOKKEEPING or k == "seed" or k not in done:
            continue
        text = done[k].map(repr)
        if (text.groupby([keyed[g] for g in group_by]).nunique() > 1).any():
            out.append(k)
    return out


def build_table(args, frame: pd.DataFrame | None = None) -> tuple[pd.DataFrame, list[str], list[str]]:
    """(summary table, group keys, metrics) of the runs (`frame`: loaded by the caller: one warning)."""
    if frame is None:
        frame = load_runs(args.runs, args.wandb, args.sweep)
        require_runs(frame, args.runs, args.sweep, args.wandb)
    warn_about(frame)
    group_by = resolve_group(frame, key_list(args.group_by))
    metrics = resolve_metrics(frame, [t.strip() for t in args.metrics.split(",") if t.strip()] if args.metrics else None)
    if not (frame["status"] == "finished").any():
        counts = ", ".join(f"{n} {s}" for s, n in frame["status"].value_counts().items())
        raise UsageError(f"no finished runs to compare ({counts}); see summary.json of each run for the reason")
    extra = split_keys(frame, group_by)
    if extra:  # averaging runs of different epochs or data limits would not be a mean over seeds
        print(f"note: rows are also split by {', '.join(extra)}: runs of one {','.join(group_by)} group differ "
              f"there, so they are not replicates", file=sys.stderr)
        group_by = group_by + extra
    return summarise(frame, group_by, metrics), group_by, metrics


def warn_about(frame: pd.DataFrame) -> None:
    """Runs that could not be read, and runs a sweep stopped early, are said on stderr, never hidden."""
    note = unreadable_note(frame)
    if note:
        print(f"warning: {note}", file=sys.stderr)
    n = int((frame["status"] == "stopped").sum()) if "status" in frame else 0
    if n:
        print(f"note: {n} run(s) were stopped early by their sweep's early termination: counted in the `stopped "
              f"early` column, not in any mean (they trained fewer epochs)", file=sys.stderr)


def key_list(text):
    """Comma-separated config keys, older names read as today's (noise_std is noise_level)."""
    keys = [t.strip() for t in text.split(",") if t.strip()] if text else None
    return list(canonical(dict.fromkeys(keys))) if keys else None


def add_common(p: argparse.ArgumentParser):
    p.add_argument("--runs", default="runs", help="local run store (default runs/)")
    p.add_argument("--wandb", default=None, metavar="ENTITY/PROJECT", help="read runs from W&B instead")
    p.add_argument("--sweep", default=None, help="only runs of this sweep")
    p.add_argument("--group-by", default=None, help="config keys defining a configuration")
    p.add_argument("--metrics", default=None, help="metrics, e.g. psnr,ssim,probe_acc")
    p.error = lambda msg: exit_usage(p.prog, UsageError(msg))


def budget(frame) -> str:
    """What the runs cost and saw: epochs, images, image shape, device, training time."""
    done = frame[frame["status"] == "finished"] if "status" in frame else frame

    def values(col, fmt=str):
        vals = sorted({fmt(v) for v in done[col].dropna()}) if col in done else []
        return "/".join(vals) if vals else "-"
    parts = [f"epochs {values('epochs_done', lambda v: str(int(v)))}",
             f"train/val/test images {values('n_train', lambda v: str(int(v)))}/"
             f"{values('n_val', lambda v: str(int(v)))}/{values('n_test', lambda v: str(int(v)))}",
             f"input {values('input_shape')}", f"device {values('device_used')}"]
    if "train_seconds" in done and done["train_seconds"].notna().any():
        parts.append(f"total training time {done['train_seconds'].sum():,.0f} s over {len(done)} runs")
    return "Budget: " + ", ".join(parts) + "."


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.tables", description=__doc__.splitlines()[0])
    add_common(p)
    p.add_argument("--format", default="md", choices=["md", "csv", "latex", "json"])
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    try:
        summary, group_by, metrics = build_table(args)
    except UsageError as e:
        exit_usage(p.prog, e)
    if summary["duplicates"].any():
        print(f"warning: {int(summary['duplicates'].sum())} run(s) repeat a seed of their configuration; "
              f"each seed is counted once (the latest run)", file=sys.stderr)
    for warning in filter(None, (few_seeds_warning(summary), collapse_warning(summary))):
        print(warning, file=sys.stderr)
    text = render(summary, group_by, metrics, args.format)
    if args.out:
        try:
            Path(args.out).write_text(text + "\n")
        except OSError as e:
            exit_usage(p.prog, UsageError(f"--out {args.out}: cannot write ({e.strerror or type(e).__name__})"))
        print(f"wrote {args.out} ({len(summary)} configurations)")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
