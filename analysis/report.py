"""A report of recorded runs: a self-contained HTML page and an image-free markdown file.

    python -m analysis.report [--runs DIR | --wandb ENTITY/PROJECT] [--sweep NAME]
        [--group-by KEYS] [--metrics M] [--max-chars 7500] --out DIR

The HTML embeds every image as base64 (it opens from disk, no server): the comparison
table, the comparison plots, and each run's own figures (reconstructions, curves,
latent plots). The markdown holds the tables only and is cut to --max-chars.
"""
from __future__ import annotations

import argparse
import base64
import html
import sys
import time
from pathlib import Path

from analysis import plots
from analysis.load import load_runs, require_runs, unreadable_note
from analysis.tables import add_common, build_table, display, md_cell, to_markdown
from bench.errors import UsageError, exit_usage

CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}th,td{border:1px solid #ccc;padding:4px 8px}
th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee;margin:4px 0}
.run{border-top:1px solid #ddd;padding-top:.5em}.grid{display:flex;flex-wrap:wrap;gap:8px}
.grid figure{margin:0;max-width:48%}figcaption{font-size:12px;color:#555}"""


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def img_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def run_figures(run_path: str) -> list[Path]:
    """A run's own PNG figures, and nothing else: no symlinks, nothing resolving outside
    `<run>/figures`, only files that are PNGs, so a shared run folder cannot make the
    report embed other files of the reader's machine."""
    if not run_path:
        return []
    fig_dir = Path(run_path) / "figures"
    if fig_dir.is_symlink() or not fig_dir.is_dir():
        return []
    root = fig_dir.resolve()
    out = []
    for p in sorted(fig_dir.glob("*.png")):
        if p.is_symlink() or not p.is_file() or p.resolve().parent != root:
            continue
        with open(p, "rb") as f:
            if f.read(8) != PNG_MAGIC:
                continue
        out.append(p)
    return out


def tool_failures(frame) -> list[str]:
    """`run id: tool (reason)` for every evaluation tool that failed in a selected run."""
    out = []
    for col in sorted(c for c in frame.columns if str(c).endswith("/failed")):
        for _, r in frame[frame[col].map(lambda v: isinstance(v, str) and bool(v))].iterrows():
            out.append(f"{r['run_id']}: {col.split('/')[0]} ({r[col]})")
    return out


def status_table(frame) -> str:
    counts = frame["status"].value_counts().to_dict()
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))


CI_NOTE = "Values are the mean ± the 95% confidence interval of the mean (Student t, n seeds); a single value where n = 1."


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


def settings(row, keys) -> str:
    """A run named by the settings that distinguish it in this report."""
    from analysis.tables import _fmt
    return ", ".join(f"{k}={_fmt(row[k])}" for k in keys if k in row and k != "seed") + \
        (f", seed {int(row['seed'])}" if "seed" in row and row["seed"] == row["seed"] else "")


def markdown(title, table_md, runs_md, status, max_chars, intro="") -> str:
    head = f"# {md_cell(title)}\n\nRuns: {status}.\n\n{intro}\n\n## Comparison\n\n{table_md}\n"
    body = f"\n## Runs\n\n{runs_md}\n"
    text = head + body
    if len(text) <= max_chars:
        return text
    text = head + "\n## Runs\n\n(per-run table omitted to respect the length limit)\n"
    if len(text) <= max_chars:
        return text
    keep = head.splitlines()
    while keep and len("\n".join(keep)) + 40 > max_chars:  # drop table rows from the end until it fits
        keep.pop()
    return "\n".join(keep) + "\n\n(table truncated to respect the length limit)\n"


def build_report(args, out: Path) -> tuple[Path, Path]:
    frame = load_runs(args.runs, args.wandb, args.sweep)
    require_runs(frame, args.runs, args.sweep, args.wandb)
    summary, group_by, metrics = build_table(args)
    table = display(summary, group_by, metrics)
    notes: list[str] = []
    figs = plots.make_plots(args, out / "figures", notes)  # creates `out` once the selection is good
    title = f"aebench report: {args.sweep or args.wandb or args.runs}"
    cols = ["run_id", "status", "settings"] + [m for m in metrics if m in frame]
    frame = frame.assign(settings=frame.apply(lambda r: settings(r, group_by), axis=1))
    runs_tbl = frame[[c for c in cols if c in frame]].copy()
    for m in metrics:
        if m in runs_tbl:
            runs_tbl[m] = runs_tbl[m].map(lambda v: "-" if v != v else f"{v:.4g}")
    note = unreadable_note(frame)
    failures = tool_failures(frame)
    status = status_table(frame) + (f"; {note}" if note else "") + "".join(f"; {n}" for n in notes) + \
        (f"; evaluation tools that failed (results kept; re-run with `python -m bench.evaluate RUN --what TOOL`): "
         + "; ".join(failures) if failures else "")
    intro = md_cell(budget(frame)) + " " + CI_NOTE
    md = markdown(title, to_markdown(table), to_markdown(runs_tbl), md_cell(status), args.max_chars, intro)
    md_path = out / "report.md"
    md_path.write_text(md)

    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p>Runs: {html.escape(status)}. Generated {time.strftime('%Y-%m-%d %H:%M')}.</p>",
             f"<p>{html.escape(budget(frame))} {html.escape(CI_NOTE)}</p>",
             "<h2>Comparison</h2>", table.to_html(index=False, border=0),
             "<h2>Plots</h2><div class='grid'>"]
    for name, p in figs.items():
        parts.append(f"<figure>{img_tag(p, name)}<figcaption>{html.escape(name)}</figcaption></figure>")
    parts.append("</div><h2>Runs</h2>")
    parts.append(runs_tbl.to_html(index=False, border=0))
    for _, r in frame.iterrows():
        pngs = run_figures(str(r["path"])) if r.get("source") == "local" else []
        if not pngs:
            continue
        parts.append(f"<div class='run'><h3>{html.escape(str(r['settings']))}: {html.escape(str(r['run_id']))} "
                     f"({html.escape(str(r['status']))})</h3>"
                     "<div class='grid'>")
        for p in pngs:
            parts.append(f"<figure>{img_tag(p, p.stem)}<figcaption>{html.escape(p.stem)}</figcaption></figure>")
        parts.append("</div></div>")
    # The page checks itself once loaded: how many images decoded and table rows rendered
    # (read by the headless-browser test, handy in devtools too).
    parts.append("<script>window.addEventListener('load',function(){var b=document.body;"
                 "b.dataset.imagesTotal=document.images.length;"
                 "b.dataset.imagesDecoded=Array.from(document.images).filter(function(i){"
                 "return i.complete&&i.naturalWidth>0}).length;"
                 "b.dataset.tableRows=document.querySelectorAll('table tbody tr').length;});</script>")
    parts.append("</body></html>")
    html_path = out / "report.html"
    html_path.write_text("\n".join(parts))
    return html_path, md_path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__.splitlines()[0])
    add_common(p)
    p.add_argument("--x", default=None, help="hyperparameter for metric-vs-x plots")
    p.add_argument("--max-chars", type=int, default=7500, help="length cap of the markdown report")
    p.add_argument("--out", default="reports/report", help="output folder (default reports/report, git-ignored)")
    args = p.parse_args(argv)
    try:
        html_path, md_path = build_report(args, Path(args.out))
    except UsageError as e:
        exit_usage(p.prog, e)
    except OSError as e:
        exit_usage(p.prog, UsageError(f"--out {args.out}: cannot write the report ({e.strerror or type(e).__name__})"))
    print(f"wrote {html_path} and {md_path} ({md_path.stat().st_size} chars)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
