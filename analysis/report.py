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
import base64
import html
import sys
import time
from pathlib import Path

import pandas as pd

from analysis import plots
from analysis.templates import OLDER_NAMES, TEMPLATES, TO_WRITE, for_sweep
from analysis.load import load_runs, require_runs, unreadable_note, varying_keys
from analysis.tables import (add_common, budget, build_table, collapse_warning, display, few_seeds_warning, md_cell,
                             summarise, to_markdown)
from bench.errors import UsageError, exit_usage

CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}th,td{border:1px solid #ccc;padding:4px 8px}
th{background:#f3f3f3}img{max-width:100%;box-sizing:border-box;border:1px solid #eee;margin:4px 0}
.run{border-top:1px solid #ddd;padding-top:.5em}.grid{display:flex;flex-wrap:wrap;gap:8px}
.grid figure{margin:0;max-width:48%}.grid figure.wide{max-width:100%}figcaption{font-size:12px;color:#555}
.towrite{border-left:4px solid #e0a800;background:#fff8e1;padding:.4em .8em;margin:.8em 0}
.missing{color:#777;font-style:italic}
@page{size:A4;margin:14mm}
@media print{body{max-width:none;margin:0;font-size:11px}h2{break-after:avoid}
figure,tr,.towrite,section.runs{break-inside:avoid}.grid figure{max-width:48%}img{max-height:120mm;border:0}
script{display:none}}"""


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def html_table(table: pd.DataFrame) -> str:
    """A table as HTML (escaped by pandas) whose `mean ± ci` cells never break at the ±."""
    return table.to_html(index=False, border=0).replace(" ± ", "&nbsp;±&nbsp;")


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
    for warning in (collapse_warning(summary), few_seeds_warning(summary)):
        if warning:
            notes.append(warning.removeprefix("warning: "))
    fd = fd_note(frame)
    if fd:
        notes.append(fd)
    failures = tool_failures(frame)
    status = status_table(frame) + (f"; {note}" if note else "") + "".join(f"; {n}" for n in notes) + \
        ("; evaluation tools that failed (results kept; re-run with `python -m bench.evaluate RUN --what TOOL`): "
         + "; ".join(failures) if failures else "")
    intro = md_cell(budget(frame)) + " " + CI_NOTE
    md = markdown(title, to_markdown(table), to_markdown(runs_tbl), md_cell(status), args.max_chars, intro)
    md_path = out / "report.md"
    md_path.write_text(md)

    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p>Runs: {html.escape(status)}. Generated {time.strftime('%Y-%m-%d %H:%M')}.</p>",
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
    parts.append(SELF_CHECK + "</body></html>")
    html_path = out / "report.html"
    html_path.write_text("\n".join(parts))
    return html_path, md_path


def _table_block(frame, block, template) -> tuple[str, object]:
    """(markdown, display frame or None) of one template table."""
    from analysis.tables import _fmt, collapsed_cells, seed_values_note, split_keys, summarise
    from analysis.templates import metric_spec, select

    if block.sweep:
        sub = select(frame, block.sweep, block.models)
    else:
        sub = pd.concat([select(frame, sw, block.models) for sw in template.sweeps]) if len(frame) else frame
    where = f"sweep `{block.sweep}`" if block.sweep else "this experiment's sweeps"
    if not len(sub):
        cmd = f"python -m bench.sweep sweeps/{block.sweep or template.sweeps[0]}.yaml"
        return f"_{block.caption}: no finished runs of {where}"  \
               f"{' for ' + ', '.join(block.models) if block.models else ''} yet (`{cmd}`)._", None
    metrics = [(k, lab) for k, lab in map(metric_spec, block.metrics) if k in sub and sub[k].notna().any()]
    if not metrics:
        return f"_{block.caption}: the runs of {where} recorded none of " \
               f"{', '.join(metric_spec(m)[0] for m in block.metrics)}._", None
    group_by = [k for k in (block.group_by or varying_keys(sub)) if k in sub] or ["model"]  # keys the runs recorded
    group_by = group_by + [k for k in split_keys(sub, group_by) if k not in group_by]
    summary = summarise(sub, group_by, [k for k, _ in metrics])
    table = pd.DataFrame({k: summary[k].map(_fmt) for k in group_by})
    table["seeds"] = summary["seeds"]  # which seeds, as in every table (their count is the interval's n)
    for k, lab in metrics:
        if k in ("params", "trainable_params", "best_epoch", "epochs_done"):
            table[lab] = summary[k].map(lambda v: "-" if v != v else f"{v:,.0f}")
        else:
            table[lab] = [_fmt(v, c if c is not None else float("nan")) + seed_values_note(vals) for v, c, vals
                          in zip(summary[k], summary[f"{k}_ci"], summary[f"{k}_values"])]
    if summary["collapsed"].any():
        table["collapsed"] = collapsed_cells(summary)
    if summary["stopped"].any():  # runs the sweep's early termination ended: listed, never averaged
        table["stopped early (not averaged)"] = summary["stopped"]
    return f"**{block.caption}**\n\n{to_markdown(table)}", table


# The evaluation tool that draws each per-run figure (the others come with training)
FIGURE_TOOLS = {"arithmetic": "arith", "attribute_direction": "arith", "decision_regions": "embed", "embed_2d": "embed",
                "embed_3d": "embed", "embed_clean_vs_noisy": "embed", "interpolation": "interp",
                "occlusion": "occlusion", "mask_ratio_curve": "occlusion", "samples": "sample", "kl_per_dim": "collapse",
                "denoise": "denoise"}


def missing_figure(frame, block, template) -> str:
    """One line for a figure the runs cannot make yet: what is missing and the exact command."""
    from analysis.templates import select

    sweep = block.sweep or template.sweeps[0]
    sub = select(frame, sweep, block.models) if len(frame) else frame
    stem = block.kind.split(":", 1)[-1]
    tool = FIGURE_TOOLS.get(stem)
    who = f" of {', '.join(block.models)}" if block.models else ""
    if not len(sub):
        return f"missing: {block.caption}: no finished runs{who} of sweep {sweep}; run `python -m bench.sweep sweeps/{sweep}.yaml`"
    if tool:
        first = sub.sort_values("run_id")["path"].iloc[0] if "path" in sub else "RUN"
        return (f"missing: {block.caption}: the runs{who} of sweep {sweep} have no {stem} figure; run "
                f"`python -m bench.evaluate {first} --what {tool}` for each run, or the sweep with `--eval {tool}`")
    return (f"missing: {block.caption}: the runs{who} of sweep {sweep} cannot draw it (curves need 2 epochs or more, "
            f"snapshots a reconstructing model); run `python -m bench.sweep sweeps/{sweep}.yaml`")


def _template_figure(frame, block, template, out: Path, index: int) -> list[tuple[Path, str]]:
    """(png, caption) pairs of one template figure; [] when the runs cannot make it."""
    from analysis.tables import split_keys, summarise
    from analysis.templates import select

    sweeps = [block.sweep] if block.sweep else list(template.sweeps)
    sub = pd.concat([select(frame, sw, block.models) for sw in sweeps]) if len(frame) else frame
    if not len(sub):
        return []
    group_by = varying_keys(sub)
    group_by += [k for k in split_keys(sub, group_by) if k not in group_by]
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{index:02d}_{block.kind.replace(':', '_')}.png"
    if block.kind == "curves":
        p = plots.curves(sub, group_by, path)
        return [(p, block.caption)] if p else []
    if block.kind == "side_by_side":
        p = plots.side_by_side(sub, group_by, path, n_images=5, title=block.caption)
        return [(p, block.caption)] if p else []
    if block.kind == "denoise":
        cols = [c for c in sub.columns if c.startswith("denoise/mse@")]
        p = plots.denoise_heatmap(summarise(sub, group_by, cols), group_by, "mse", path) if cols else None
        return [(p, block.caption)] if p else []
    stem = block.kind.split(":", 1)[1]
    shown = []
    keyed = sub.assign(_key=sub.apply(lambda r: settings(r, group_by).split(", seed")[0], axis=1))
    for key, g in keyed.groupby("_key", sort=True):
        for _, r in (g.sort_values("seed") if "seed" in g else g).iterrows():
            hit = [p for p in run_figures(str(r["path"])) if p.stem == stem] if r.get("source") == "local" else []
            if hit:
                seed = f", seed {int(r['seed'])}" if "seed" in r and r["seed"] == r["seed"] else ""
                shown.append((hit[0], f"{block.caption}: {key + ' ' if key else ''}(run {r['run_id']}{seed})"))
                break
    return shown


def build_template_report(args, template, out: Path) -> tuple[Path, Path]:
    """The assignment's report: its sections, filled in from the runs of its sweeps."""
    from analysis.templates import Facts, Table

    frame = load_runs(args.runs, args.wandb, None)
    mine = frame[frame.apply(lambda r: r.get("sweep") in template.sweeps or r.get("group") in template.sweeps,
                             axis=1)] if len(frame) else frame
    if not len(mine):
        raise UsageError(f"template {template.name}: no runs of its sweeps ({', '.join(template.sweeps)}) in "
                         f"{args.wandb or args.runs}; run e.g. `python -m bench.sweep sweeps/{template.sweeps[0]}.yaml`")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {out}: cannot create it ({e.strerror or type(e).__name__})") from None
    lead = _template_lead(mine, template)
    # Each table and each sentence of numbers once; the markdown (possibly twice, to fit the
    # cap) and the HTML are both written from these.
    blocks = [b for sec in template.sections for b in sec.blocks]
    filled = {id(b): _table_block(mine, b, template) for b in blocks if isinstance(b, Table)}
    filled.update({id(b): b.fn(mine) for b in blocks if isinstance(b, Facts)})
    cap = args.max_chars if args.max_chars is not None else template.max_chars
    md = _template_markdown(template, lead, filled, short=False)
    if cap and len(md) > cap:
        md = _template_markdown(template, lead, filled, short=True)
    if cap and len(md) > cap:
        md = md[:cap - 60].rsplit("\n", 1)[0] + "\n\n(cut to respect the length limit)\n"
    md_path = out / "report.md"
    md_path.write_text(md)
    html_path = out / "report.html"
    html_path.write_text(_template_html(mine, template, lead, filled, out))
    return html_path, md_path


def fd_note(frame) -> str | None:
    """Which networks the sample FDs are measured in, and how far those networks disagree."""
    if "sample/fd_features" not in frame:
        return None
    nets = sorted(str(v) for v in frame["sample/fd_features"].dropna().unique())
    spreads = frame[[c for c in frame.columns if c.startswith("sample/") and c.endswith("_fd_spread")]]
    spread = f" (they disagree by up to {spreads.max().max():.0%} on these samples)" if spreads.notna().any().any() else ""
    if not nets:
        return None
    return (f"FD is the Frechet distance in the features of {', '.join(nets)}: the mean over three small classifiers "
            f"aebench trains once per dataset with seeds 0, 1, 2{spread}; comparable within this report, not with "
            f"Inception FIDs")


def _template_lead(mine, template) -> str:
    """The opening paragraph: which assignment, which runs, what is missing or failed."""
    from analysis.templates import TO_WRITE

    found = [sw for sw in template.sweeps if ((mine.get("sweep") == sw) | (mine.get("group") == sw)).any()]
    missing = [s for s in template.sweeps if s not in found]
    lead = (f"Report for {template.assignment or template.title}, generated from the recorded runs "
            f"({status_table(mine)}) of {', '.join(found)}"
            + (f"; not yet run: {', '.join(missing)}" if missing else "")
            + f". {CI_NOTE} Places marked {TO_WRITE} are the author's.")
    failures = tool_failures(mine)
    if failures:
        lead += " Evaluation tools that failed (other results kept): " + "; ".join(failures) + "."
    fd = fd_note(mine)
    if fd:
        lead += f" {fd}."
    mine_summary = summarise(mine, varying_keys(mine), [])
    collapsed = collapse_warning(mine_summary)
    if collapsed:  # first: every number after it may describe a constant image
        lead = "Warning: " + collapsed.removeprefix("warning: ") + ". " + lead
    few = few_seeds_warning(mine_summary)
    if few:
        lead += " " + few.removeprefix("warning: ")[0].upper() + few.removeprefix("warning: ")[1:] + "."
    return lead


def _template_markdown(template, lead: str, filled: dict, short: bool) -> str:
    """The markdown report; `short` keeps only the first clause of each prompt (length caps)."""
    from analysis.templates import Discuss, Facts, Table, TO_WRITE

    parts = [f"**{template.title}**\n\n{md_cell(lead)}\n" if template.only_sections
             else f"# {template.title}\n\n{md_cell(lead)}\n"]
    for sec in template.sections:
        parts.append(f"## {sec.title}\n")  # the template's own text: no escaping needed
        for b in sec.blocks:
            if isinstance(b, Table):
                parts.append(filled[id(b)][0] + "\n")
            elif isinstance(b, Facts) and (text := filled[id(b)]):
                parts.append(md_cell(text) + "\n")
            elif isinstance(b, Discuss):
                prompt = b.prompt.split(";")[0].split(".")[0] if short else b.prompt
                parts.append(f"> **{TO_WRITE}:** {prompt}\n")
    return "\n".join(parts)


def _template_html(mine, template, lead: str, filled: dict, out: Path) -> str:
    """The HTML report: the same sections with their figures, then the runs."""
    from analysis.templates import Discuss, Facts, Figure, Table, TO_WRITE

    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(template.title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(template.title)}</h1>",
             f"<p>{html.escape(lead)} Generated {time.strftime('%Y-%m-%d %H:%M')}.</p>"]
    fig_index = 0
    for sec in template.sections:
        parts.append(f"<h2>{html.escape(sec.title)}</h2>")
        figures = []
        for b in sec.blocks:
            if isinstance(b, Table):
                text, table = filled[id(b)]
                parts.append(f"<p><b>{html.escape(b.caption)}</b></p>" + html_table(table)
                             if table is not None else f"<p class='missing'>{html.escape(text.strip('_'))}</p>")
            elif isinstance(b, Facts) and (text := filled[id(b)]):
                parts.append(f"<p>{html.escape(text)}</p>")
            elif isinstance(b, Discuss):
                parts.append(f"<div class='towrite'><b>{TO_WRITE}:</b> {html.escape(b.prompt)}</div>")
            elif isinstance(b, Figure):
                fig_index += 1
                made = _template_figure(mine, b, template, out / "figures", fig_index)
                figures += made
                if not made:
                    parts.append(f"<p class='missing'>{html.escape(missing_figure(mine, b, template))}</p>")
        if figures:
            parts.append("<div class='grid'>" + "".join(
                f"<figure{_wide(p)}>{img_tag(p, cap_)}<figcaption>{html.escape(cap_)}</figcaption></figure>"
                for p, cap_ in figures) + "</div>")
    parts.append(f"<section class='runs'><h2>Runs</h2><p>{html.escape(budget(mine))}</p>"
                 + html_table(_runs_table(mine)) + "</section>")
    return "\n".join(parts + [SELF_CHECK + "</body></html>"])


def _runs_table(mine: pd.DataFrame) -> pd.DataFrame:
    """Every run with its settings, its headline numbers and whether it collapsed."""
    from analysis.tables import collapsed_runs, resolve_metrics

    keys = [k for k in ("model", "dataset", "seed") if k in mine]
    distinguishing = varying_keys(mine)
    metrics = resolve_metrics(mine, None)[:5]
    tbl = mine.assign(settings=mine.apply(lambda r: settings(r, distinguishing), axis=1))
    tbl = tbl[["run_id", "status", "settings"] + keys + metrics].copy()
    for m in metrics:
        tbl[m] = tbl[m].map(lambda v: "-" if v != v else f"{v:.4g}")
    flags = collapsed_runs(mine)
    if flags.any():
        tbl["collapsed"] = flags.map(lambda c: "collapsed" if c else "")
    return tbl


def _wide(png: Path) -> str:
    """A figure much wider than tall (learning-curve panels, comparison grids) takes the full
    width of the page; others sit two to a row."""
    import struct
    with open(png, "rb") as f:
        head = f.read(24)
    w, h = struct.unpack(">II", head[16:24])
    return " class='wide'" if w > 1.8 * h or w > 1100 else ""


# The page checks itself once loaded: how many images decoded and table rows rendered
# (read by the headless-browser test, handy in devtools too).
SELF_CHECK = ("<script>window.addEventListener('load',function(){var b=document.body;"
              "b.dataset.imagesTotal=document.images.length;"
              "b.dataset.imagesDecoded=Array.from(document.images).filter(function(i){"
              "return i.complete&&i.naturalWidth>0}).length;"
              "b.dataset.tableRows=document.querySelectorAll('table tbody tr').length;});</script>")


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
