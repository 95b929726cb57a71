"""What the two reports share: the page's style, embedded figures, and per-run notes."""
from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px;max-width:100%;display:block;overflow-x:auto}
th,td{border:1px solid #ccc;padding:4px 8px;overflow-wrap:normal}code{font-size:90%;background:#f5f5f5}
th{background:#f3f3f3}img{max-width:100%;box-sizing:border-box;border:1px solid #eee;margin:4px 0}
.run{border-top:1px solid #ddd;padding-top:.5em}.grid{display:flex;flex-wrap:wrap;gap:8px}
.grid figure{margin:0;max-width:48%}.grid figure.wide{max-width:100%}figcaption{font-size:12px;color:#555}
.towrite{border-left:4px solid #e0a800;background:#fff8e1;padding:.4em .8em;margin:.8em 0}
.missing{color:#777;font-style:italic}
@page{size:A4;margin:14mm}
@media print{body{max-width:none;margin:0;font-size:11px}h2{break-after:avoid}
figure,tr,.towrite,section.runs{break-inside:avoid}.grid figure{max-width:48%}img{max-height:120mm;border:0}
script{display:none}table{display:table}th,td{overflow-wrap:anywhere}}"""


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


def tool_skips(frame) -> list[str]:
    """`tool: not scored in N run(s) (reason)`, once per tool and reason, for every evaluation tool
    that could not do its work in a selected run (the sample score without a feature space, say)."""
    out = []
    for col in sorted(c for c in frame.columns if str(c).endswith("/skipped")):
        reasons = frame[col][frame[col].map(lambda v: isinstance(v, str) and bool(v))]
        for reason, n in reasons.value_counts().items():
            out.append(f"{col.split('/')[0]}: not done in {n} run(s) ({reason})")
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


SELF_CHECK = ("<script>window.addEventListener('load',function(){var b=document.body;"
              "b.dataset.imagesTotal=document.images.length;"
              "b.dataset.imagesDecoded=Array.from(document.images).filter(function(i){"
              "return i.complete&&i.naturalWidth>0}).length;"
              "b.dataset.tableRows=document.querySelectorAll('table tbody tr').length;"
              # how far any table or figure reaches past the page's right edge (0: all within it)
              "var w=document.documentElement.clientWidth,r=0;"
              "document.querySelectorAll('table,figure,img').forEach(function(e){"
              "r=Math.max(r,e.getBoundingClientRect().right-w)});"
              "b.dataset.overflowPx=Math.max(0,Math.ceil(r));"
              # words of table cells drawn across two lines ("finishe|d"): a Range per word, two boxes
              "var n=0;document.querySelectorAll('td,th').forEach(function(c){"
              "var t=document.createTreeWalker(c,NodeFilter.SHOW_TEXT),x;while((x=t.nextNode())){"
              "var re=/\\S+/g,m;while((m=re.exec(x.data))){var g=document.createRange();"
              "g.setStart(x,m.index);g.setEnd(x,m.index+m[0].length);"
              "var tops=new Set(Array.from(g.getClientRects()).map(function(q){return Math.round(q.top)}));"
              "if(tops.size>1)n++;}}});b.dataset.brokenWords=n;});</script>")


def fd_networks(frame) -> list[str]:
    """The identities of the networks the runs' sample FDs were measured in."""
    if "sample/fd_features" not in frame:
        return []
    return sorted(str(v) for v in frame["sample/fd_features"].dropna().unique())


def fd_note(frame) -> str | None:
    """Which networks the sample FDs are measured in (their long identities go to the notes at
    the end), and how far those networks disagree."""
    nets = fd_networks(frame)
    if not nets:
        return None
    spreads = frame[[c for c in frame.columns if c.startswith("sample/") and c.endswith("_fd_spread")]]
    spread = f" (they disagree by up to {spreads.max().max():.0%} on these samples)" if spreads.notna().any().any() else ""
    spaces = set(frame["sample/score_space"].dropna()) if "sample/score_space" in frame else set()
    if spaces == {"inception"}:
        text = "FD is the Frechet Inception Distance (InceptionV3, 2048-d), comparable with papers"
    else:
        text = (f"FD is the Frechet distance in the features of three fixed small classifiers per dataset (shipped "
                f"with aebench for MNIST and Fashion-MNIST, the same bytes on every machine; trained once by the same "
                f"recipe for other datasets), the mean over the three{spread} (their identities are in the notes at "
                f"the end); comparable between runs that name the same networks, not with Inception FIDs"
                + ("; some runs were scored by Inception FID instead (see `sample/score_space`), and the two do "
                   "not compare" if "inception" in spaces else ""))
    untold = untold_note(frame)
    return text + (f". {untold}" if untold else "")


def untold_note(frame) -> str:
    """Samplers whose FD bootstrap intervals overlap in a run: its samples do not tell them apart."""
    names = sorted(c[len("sample/"):-len("_fd_lo")] for c in frame.columns
                   if c.startswith("sample/") and c.endswith("_fd_lo"))
    parts = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            cols = [f"sample/{a}_fd_lo", f"sample/{a}_fd_hi", f"sample/{b}_fd_lo", f"sample/{b}_fd_hi"]
            both = frame[cols].dropna()
            if len(both):
                overlap = (both[cols[0]] <= both[cols[3]]) & (both[cols[2]] <= both[cols[1]])
                if overlap.any():
                    parts.append(f"{a} and {b} in {int(overlap.sum())} of {len(both)} runs")
    return ("The 95% intervals of sample FD (bootstrap over the scored images) overlap for " + "; ".join(parts)
            + ": those samplers are not told apart by these samples") if parts else ""


def notes(frame) -> list[str]:
    """Long identities a reader may need, kept out of the text: the report's closing notes."""
    nets = fd_networks(frame)
    return [f"Sample-score feature networks: {', '.join(f'`{n}`' for n in nets)}"] if nets else []


def notes_md(frame, header: bool = True) -> str:
    """The closing notes in markdown: a `## Notes` section, or (where a report must hold its
    assignment's sections and no other header) one closing paragraph."""
    items = notes(frame)
    if not items:
        return ""
    if not header:
        return "\nNotes: " + " ".join(f"({i}) {md_text(t)}" for i, t in enumerate(items, 1)) + "\n"
    return "\n## Notes\n\n" + "".join(f"{i}. {md_text(t)}\n" for i, t in enumerate(items, 1))


def notes_html(frame) -> str:
    items = notes(frame)
    return ("<section class='notes'><h2>Notes</h2><ol>" + "".join(f"<li>{prose(t)}</li>" for t in items)
            + "</ol></section>") if items else ""


def prose(text: str) -> str:
    """Text for HTML: escaped, and `code` spans (as the markdown has them) set as code."""
    parts = html.escape(str(text)).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick stays a backtick
        return html.escape(str(text))
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def md_text(text: str) -> str:
    """Text for markdown outside tables: no raw HTML, `code` spans kept."""
    return " ".join(str(text).split()).replace("<", "\\<").replace(">", "\\>")


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
