"""Runs referenced by W&B model artifact: `wandb:ENTITY/PROJECT/model-RUNID:ALIAS`.

`find_run` is what every command that takes a run calls (`--resume`, `--probe-from`,
`bench.evaluate`, `load_run_model`): a local folder or id goes to the run store, a
`wandb:` reference is downloaded once into the runs folder and then served like a local
run. The run store itself never talks to W&B.
"""
from __future__ import annotations

import os
from pathlib import Path

from bench.records.store import RunDir, find_local_run
from bench.records.track import wandb_api


def find_run(ref: str, runs_dir: str = "runs") -> RunDir:
    """A run by directory path, by id inside runs_dir, or by W&B model artifact
    (`wandb:ENTITY/PROJECT/model-RUNID:ALIAS`, downloaded into runs_dir/RUNID)."""
    if ref and ref.startswith("wandb:"):  # a model artifact of a run trained elsewhere
        return RunDir(fetch_model_artifact(ref, runs_dir))
    return find_local_run(ref, runs_dir)


ARTIFACT_REF = "wandb:ENTITY/PROJECT/NAME[:ALIAS]"
ARTIFACT_FILES = {"best.pt", "last.pt", "config.json", "summary.json", "metrics.jsonl"}


def fetch_model_artifact(ref: str, runs_dir: str, api=None) -> Path:
    """Download a run's `model` artifact into runs_dir/<run id> (once) and return that folder,
    which then serves --probe-from, --resume and bench.evaluate like a local run. Only the
    known record files are kept; the checkpoints are still loaded weights-only."""
    import re
    import shutil
    import tempfile

    from bench.core.errors import UsageError
    from bench.core.files import check_plain_name

    m = re.fullmatch(r"wandb:([\w.-]+)/([\w.-]+)/([\w.-]+)(?::([\w.-]+))?", ref)
    if not m:
        raise UsageError(f"{ref!r}: give {ARTIFACT_REF}, e.g. wandb:my-team/aebench/model-<run id>:best")
    entity, project, name, alias = m.groups()
    path = f"{entity}/{project}/{name}:{alias or 'best'}"
    if api is None:
        api = wandb_api(ref, "give a local run folder instead")
    try:
        art = api.artifact(path, type="model")
    except Exception as e:
        raise UsageError(f"{ref}: no such model artifact ({type(e).__name__}: {' '.join(str(e).split())[:160]})") \
            from None
    run_id = str((getattr(art, "metadata", None) or {}).get("run_id") or name.removeprefix("model-"))
    check_plain_name("run id", run_id)
    dest = Path(runs_dir) / run_id
    if (dest / "config.json").exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".download-{run_id}-") as tmp:
        art.download(root=tmp)
        got = {p.name for p in Path(tmp).iterdir() if p.is_file() and not p.is_symlink()}
        if "config.json" not in got or not got & {"best.pt", "last.pt"}:
            raise UsageError(f"{ref}: the artifact holds no aebench run (files: {', '.join(sorted(got)) or 'none'})")
        keep = Path(tmp) / "run"
        keep.mkdir()
        for n in got & ARTIFACT_FILES:
            shutil.move(str(Path(tmp) / n), keep / n)
        os.replace(keep, dest)
    print(f"fetched {path} into {dest}", flush=True)
    return dest
