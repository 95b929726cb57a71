"""A course assignment's report (`analysis/templates.py`): its sections, tables and
numbers filled in from the runs of its sweep, each figure drawn or named as missing with the
command that makes it, and what the student still has to write marked TO WRITE."""
from __future__ import annotations

import html
import time
from pathlib import Path

import pandas as pd

from analysis import plots
from analysis.load import in_order, load_runs, varying_keys
from analysis.page import (CI_NOTE, CSS, SELF_CHECK, _wide, fd_note, html_table, img_tag, notes_html, notes_md, prose,
                           run_figures, settings, status_table, tool_failures, tool_skips)
from analysis.tables import budget, collapse_warning, few_seeds_warning, md_cell, summarise, to_markdown
from bench.core.errors import UsageError


NOISY_OUTPUT, NOISY_INPUT = "test_noisy/mse", "test_noisy/input_mse"


def with_noisy_input(metrics: list, sub: pd.DataFrame) -> list:
    """A table of denoised MSEs also shows the noisy input's own (the score of doing nothing), right
    after them, where the runs recorded it."""
    keys = [k for k, _ in metrics]
    if NOISY_OUTPUT not in keys or NOISY_INPUT in keys or NOISY_INPUT not in sub or not sub[NOISY_INPUT].notna().any():
        return metrics
    at = keys.index(NOISY_OUTPUT) + 1
    return metrics[:at] + [(NOISY_INPUT, "noisy input MSE (doing nothing)")] + metrics[at:]


def common_sigmas(summary: pd.DataFrame, keys: list[str]) -> list[str]:
    """The test noise levels at which a table shows the denoising tool's MSE and the runs
    recorded their noisy input's PSNR: there each model is set against doing nothing."""
    return [k.split("@", 1)[1] for k in keys if k.startswith("denoise/mse@")
            and f"denoise/input_psnr@{k.split('@', 1)[1]}" in summary]


def versus_input(model_mse: float, input_mse: float) -> str:
    """How a denoiser's output compares with its noisy input: a model that makes it worse is marked."""
    if model_mse != model_mse or input_mse != input_mse or input_mse <= 0:
        return "-"
    ratio = model_mse / input_mse
    return f"WORSE than its input (x{ratio:.2f} its MSE)" if ratio > 1 else f"x{ratio:.2f} its input's MSE"


def _table_block(frame, block, template) -> tuple[str, object]:
    """(markdown, display frame or None) of one template table."""
    from analysis.blocks import metric_spec, select
    from analysis.tables import _fmt, collapsed_cells, metric_cells, seed_columns, split_keys, summarise

    if block.sweep:
        sub = select(frame, block.sweep, block.models)
    else:
        sub = pd.concat([select(frame, sw, block.models) for sw in template.sweeps]) if len(frame) else frame
    where = f"sweep `{block.sweep}`" if block.sweep else "this experiment's sweeps"
    if not len(sub):
        cmd = template.command(block.sweep or template.sweeps[0])
        return f"_{block.caption}: no finished runs of {where}"  \
               f"{' for ' + ', '.join(block.models) if block.models else ''} yet (`{cmd}`)._", None
    metrics = [(k, lab) for k, lab in map(metric_spec, block.metrics) if k in sub and sub[k].notna().any()]
    if not metrics:
        return f"_{block.caption}: the runs of {where} recorded none of " \
               f"{', '.join(metric_spec(m)[0] for m in block.metrics)}._", None
    metrics = with_noisy_input(metrics, sub)
    group_by = [k for k in (block.group_by or varying_keys(sub)) if k in sub] or ["model"]  # keys the runs recorded
    group_by = group_by + [k for k in split_keys(sub, group_by) if k not in group_by]
    shown = [k for k, _ in metrics]
    inputs = [f"denoise/input_psnr@{k.split('@', 1)[1]}" for k in shown if k.startswith("denoise/mse@")]
    summary = summarise(sub, group_by, shown + [k for k in inputs if k in sub and k not in shown])
    table = pd.DataFrame({k: summary[k].map(_fmt) for k in group_by})
    table = table.assign(**seed_columns(summary))  # how many seeds (the interval's n), and which
    for k, lab in metrics:
        if k in ("params", "trainable_params", "best_epoch", "epochs_done"):
            table[lab] = summary[k].map(lambda v: "-" if v != v else f"{v:,.0f}")
        else:
            table[lab] = metric_cells(summary, k)
    if NOISY_INPUT in summary:
        table["denoised vs its noisy input"] = [versus_input(a, b) for a, b in
                                                zip(summary[NOISY_OUTPUT], summary[NOISY_INPUT])]
    for sigma in common_sigmas(summary, [k for k, _ in metrics]):  # the denoising tool's common test noise
        input_mse = 10 ** (-summary[f"denoise/input_psnr@{sigma}"] / 10)  # PSNR of images in [0, 1]
        table[f"at sigma {sigma} vs its noisy input"] = [versus_input(a, b) for a, b in
                                                         zip(summary[f"denoise/mse@{sigma}"], input_mse)]
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
    from analysis.blocks import select

    sweep = block.sweep or template.sweeps[0]
    sub = select(frame, sweep, block.models) if len(frame) else frame
    stem = block.kind.split(":", 1)[-1]
    tool = FIGURE_TOOLS.get(stem)
    who = f" of {', '.join(block.models)}" if block.models else ""
    if not len(sub):
        return f"missing: {block.caption}: no finished runs{who} of sweep {sweep}; run `{template.command(sweep)}`"
    if tool:
        first = sub.sort_values("run_id")["path"].iloc[0] if "path" in sub else "RUN"
        return (f"missing: {block.caption}: the runs{who} of sweep {sweep} have no {stem} figure; run "
                f"`python -m bench.evaluate {first} --what {tool}` for each run, or the sweep with `--eval {tool}`")
    return (f"missing: {block.caption}: the runs{who} of sweep {sweep} cannot draw it (curves need 2 epochs or more, "
            f"snapshots a reconstructing model); run `{template.command(sweep)}`")


def _template_figure(frame, block, template, out: Path, index: int) -> list[tuple[Path, str]]:
    """(png, caption) pairs of one template figure; [] when the runs cannot make it."""
    from analysis.blocks import select
    from analysis.tables import split_keys, summarise

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
        cols = [c for c in sub.columns if c.startswith(("denoise/mse@", "denoise/input_psnr@"))]
        p = plots.denoise_heatmap(summarise(sub, group_by, cols), group_by, "mse", path) if cols else None
        return [(p, block.caption)] if p else []
    stem = block.kind.split(":", 1)[1]
    shown = []
    keyed = sub.assign(_key=sub.apply(lambda r: settings(r, group_by).split(", seed")[0], axis=1),
                       _order=sub.apply(lambda r: tuple(in_order(r.get(k)) for k in group_by), axis=1))
    # in the tables' order: numbers as numbers (300,5 before 300,35), not as text
    for key, g in sorted(keyed.groupby("_key"), key=lambda kg: kg[1]["_order"].iloc[0]):
        for _, r in (g.sort_values("seed") if "seed" in g else g).iterrows():
            hit = [p for p in run_figures(str(r["path"])) if p.stem == stem] if r.get("source") == "local" else []
            if hit:
                seed = f", seed {int(r['seed'])}" if "seed" in r and r["seed"] == r["seed"] else ""
                shown.append((hit[0], f"{block.caption}: {key + ' ' if key else ''}(run {r['run_id']}{seed})"))
                break
    return shown


def build_template_report(args, template, out: Path) -> tuple[Path, Path]:
    """The assignment's report: its sections, filled in from the runs of its sweeps."""
    from analysis.blocks import Facts, Table

    frame = load_runs(args.runs, args.wandb, None)
    mine = frame[frame.apply(lambda r: r.get("sweep") in template.sweeps or r.get("group") in template.sweeps,
                             axis=1)] if len(frame) else frame
    if not len(mine):
        raise UsageError(f"template {template.name}: no runs of its sweeps ({', '.join(template.sweeps)}) in "
                         f"{args.wandb or args.runs}; run e.g. `{template.command(template.sweeps[0])}`")
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
    md = _template_markdown(template, lead, filled, short=False) + notes_md(mine, header=False)
    if cap and len(md) > cap:
        md = _template_markdown(template, lead, filled, short=True) + notes_md(mine, header=False)
    if cap and len(md) > cap:
        md = md[:cap - 60].rsplit("\n", 1)[0] + "\n\n(cut to respect the length limit)\n"
    md_path = out / "report.md"
    md_path.write_text(md)
    html_path = out / "report.html"
    html_path.write_text(_template_html(mine, template, lead, filled, out))
    return html_path, md_path


def _template_lead(mine, template) -> str:
    """The opening paragraph: which assignment, which runs, what is missing or failed."""
    from analysis.blocks import TO_WRITE

    found = [sw for sw in template.sweeps if ((mine.get("sweep") == sw) | (mine.get("group") == sw)).any()]
    missing = [s for s in template.sweeps if s not in found]
    lead = (f"Report for {template.assignment or template.title}, generated from the recorded runs "
            f"({status_table(mine)}) of {', '.join(found)}"
            + (f"; not yet run: {', '.join(missing)}" if missing else "")
            + f". {CI_NOTE} Places marked {TO_WRITE} are the author's.")
    failures = tool_failures(mine)
    if failures:
        lead += " Evaluation tools that failed (other results kept): " + "; ".join(failures) + "."
    skips = tool_skips(mine)
    if skips:  # why a column or a score is missing, and the way to have it
        lead += " Not done: " + "; ".join(skips) + "."
    fd = fd_note(mine)
    if fd:
        lead += f" {fd}."
    mine_summary = summarise(mine, varying_keys(mine), [])
    collapsed = collapse_warning(mine_summary)
    if collapsed:  # first: every number after it may describe a constant image
        lead = "Warning: " + collapsed.removeprefix("warning: ") + ". " + lead
    trivial = _trivial_masks(mine)
    if trivial:
        lead += " " + trivial
    few = few_seeds_warning(mine_summary)
    if few:
        lead += " " + few.removeprefix("warning: ")[0].upper() + few.removeprefix("warning: ")[1:] + "."
    return lead


def _trivial_masks(mine) -> str:
    """A warning naming the segmenters that mark every pixel (or none) as foreground, from the
    runs' `warning/trivial_mask`: their Dice and IoU are the same whatever loss trained them."""
    from bench.tasks.segment import trivial_mask  # the rule, on the recorded areas (older runs too)

    col, areas = "warning/trivial_mask", ["test/pred_area", "test/true_area"]
    if col not in mine and not all(a in mine for a in areas):
        return ""
    flagged = mine[mine.apply(lambda r: r.get(col) is True or r.get(col) == 1 or trivial_mask(
        {a: r[a] for a in areas if a in r and r[a] == r[a]}), axis=1)]
    if not len(flagged):
        return ""
    names = ", ".join(sorted({f"{r['model']} ({r.get('seg_loss', '')})".replace(" ()", "") for _, r in flagged.iterrows()}))
    return (f"Warning: {len(flagged)} of {int(mine[areas[0]].notna().sum())} segmentation runs mark every pixel or none as "
            f"foreground ({names}; see the predicted and true areas): their Dice and IoU describe a constant mask, "
            f"whatever loss trained them; train longer or lower --lr.")


def _template_markdown(template, lead: str, filled: dict, short: bool) -> str:
    """The markdown report; `short` keeps only the first clause of each prompt (length caps)."""
    from analysis.blocks import TO_WRITE, Discuss, Facts, Table

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
    from analysis.blocks import TO_WRITE, Discuss, Facts, Figure, Table

    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(template.title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(template.title)}</h1>",
             f"<p>{prose(lead)} Generated {time.strftime('%Y-%m-%d %H:%M')}.</p>"]
    fig_index = 0
    for sec in template.sections:
        parts.append(f"<h2>{html.escape(sec.title)}</h2>")
        figures = []
        for b in sec.blocks:
            if isinstance(b, Table):
                text, table = filled[id(b)]
                parts.append(f"<p><b>{html.escape(b.caption)}</b></p>" + html_table(table)
                             if table is not None else f"<p class='missing'>{prose(text.strip('_'))}</p>")
            elif isinstance(b, Facts) and (text := filled[id(b)]):
                parts.append(f"<p>{prose(text)}</p>")
            elif isinstance(b, Discuss):
                parts.append(f"<div class='towrite'><b>{TO_WRITE}:</b> {prose(b.prompt)}</div>")
            elif isinstance(b, Figure):
                fig_index += 1
                made = _template_figure(mine, b, template, out / "figures", fig_index)
                figures += made
                if not made:
                    parts.append(f"<p class='missing'>{prose(missing_figure(mine, b, template))}</p>")
        if figures:
            parts.append("<div class='grid'>" + "".join(
                f"<figure{_wide(p)}>{img_tag(p, cap_)}<figcaption>{html.escape(cap_)}</figcaption></figure>"
                for p, cap_ in figures) + "</div>")
    parts.append(f"<section class='runs'><h2>Runs</h2><p>{html.escape(budget(mine))}</p>"
                 + html_table(_runs_table(mine)) + "</section>" + notes_html(mine))
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


