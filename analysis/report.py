"""A report of recorded runs: a self-contained HTML page and an image-free markdown file.

    python -m analysis.report [--runs DIR | --wandb ENTITY/PROJECT] [--sweep NAME]
        [--template cifar10_assignment..fashion_vae_assignment|generic] [--group-by KEYS] [--metrics M]
        [--max-chars N] --out DIR

A sweep that belongs to a course assignment gets that assignment's report
(`analysis/templates.py`): its sections, tables and numbers filled in from the runs of
all of the assignment's sweeps, and marked places (TO WRITE) for the author's discussion.
Other selections get the generic report: the comparison table, comparison plots and
each run's own figures. The HTML embeds every image as base64 (it opens from disk, no
server, and prints to PDF); the markdown holds no images and respects --max-chars.
"""
from __future__ import annotations

import argparse
import html
import sys
import time
from pathlib import Path

from analysis import plots
from analysis.assignment_report import build_template_report
from analysis.blocks import TO_WRITE
from analysis.load import load_runs, require_runs, unreadable_note
from analysis.page import (CI_NOTE, CSS, SELF_CHECK, _wide, fd_note, html_table, img_tag, notes_html, notes_md, prose,
                           run_figures, settings, status_table, tool_failures, tool_skips)
from analysis.tables import (add_common, budget, build_table, collapse_warning, display, few_seeds_warning, md_cell,
                             to_markdown)
from analysis.templates import OLDER_NAMES, TEMPLATES, for_sweep
from bench.core.errors import UsageError, exit_usage


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
    summary, group_by, metrics = build_table(args, frame)
    table = display(summary, group_by, metrics)
    notes: list[str] = []
    # creates `out` once the selection is good
    figs = plots.make_plots(args, out / "figures", notes, frame, (summary, group_by, metrics))
    title = f"aebench report: {args.sweep or args.wandb or args.runs}"
    cols = ["run_id", "status", "settings"] + [m for m in metrics if m in frame]
    frame = frame.assign(settings=frame.apply(lambda r: settings(r, group_by), axis=1))
    runs_tbl = frame[[c for c in cols if c in frame]].copy()
    for m in metrics:
        if m in runs_tbl:
            runs_tbl[m] = runs_tbl[m].map(lambda v: "-" if v != v else f"{v:.4g}")
    note = unreadable_note(frame)
    for warning in (collapse_warning(summary), few_seeds_warning(summary)):
        if warning:
            notes.append(warning.removeprefix("warning: "))
    fd = fd_note(frame)
    if fd:
        notes.append(fd)
    failures = tool_failures(frame)
    notes += [f"not done: {s}" for s in tool_skips(frame)]
    status = status_table(frame) + (f"; {note}" if note else "") + "".join(f"; {n}" for n in notes) + \
        ("; evaluation tools that failed (results kept; re-run with `python -m bench.evaluate RUN --what TOOL`): "
         + "; ".join(failures) if failures else "")
    intro = md_cell(budget(frame)) + " " + CI_NOTE
    md = markdown(title, to_markdown(table), to_markdown(runs_tbl), md_cell(status), args.max_chars, intro)
    if not args.max_chars or len(md) + len(notes_md(frame)) <= args.max_chars:
        md += notes_md(frame)
    md_path = out / "report.md"
    md_path.write_text(md)

    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p>Runs: {prose(status)}. Generated {time.strftime('%Y-%m-%d %H:%M')}.</p>",
             f"<p>{html.escape(budget(frame))} {html.escape(CI_NOTE)}</p>",
             "<h2>Comparison</h2>", html_table(table),
             "<h2>Plots</h2><div class='grid'>"]
    for name, p in figs.items():
        parts.append(f"<figure{_wide(p)}>{img_tag(p, name)}<figcaption>{html.escape(name)}</figcaption></figure>")
    parts.append("</div><h2>Runs</h2>")
    parts.append(html_table(runs_tbl))
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
    parts.append(notes_html(frame) + SELF_CHECK + "</body></html>")
    html_path = out / "report.html"
    html_path.write_text("\n".join(parts))
    return html_path, md_path



def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__.splitlines()[0])
    add_common(p)
    p.add_argument("--x", default=None, help="hyperparameter for metric-vs-x plots")
    p.add_argument("--max-chars", type=int, default=None,
                   help="length cap of the markdown report (default: the assignment's cap, else 7500)")
    p.add_argument("--template", default=None, type=lambda name: OLDER_NAMES.get(name, name),
                   choices=sorted(TEMPLATES) + ["generic"],
                   help="the assignment's report shape (default: chosen by --sweep; generic otherwise)")
    p.add_argument("--out", default="reports/report", help="output folder (default reports/report, git-ignored)")
    args = p.parse_args(argv)
    try:
        template = TEMPLATES.get(args.template) if args.template else for_sweep(args.sweep)
        if template:
            html_path, md_path = build_template_report(args, template, Path(args.out))
        else:
            if args.max_chars is None:
                args.max_chars = 7500
            html_path, md_path = build_report(args, Path(args.out))
    except UsageError as e:
        exit_usage(p.prog, e)
    except OSError as e:
        exit_usage(p.prog, UsageError(f"--out {args.out}: cannot write the report ({e.strerror or type(e).__name__})"))
    used = len(md_path.read_text())
    cap = args.max_chars or (template.max_chars if template else None)
    room = f"; {cap - used:,} of the {cap:,}-character cap left for your text" if cap else ""
    print(f"wrote {html_path} and {md_path} ({used:,} characters{room})"
          + (f"; template {template.name}: replace each '{TO_WRITE}' with your discussion" if template else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
