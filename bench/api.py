"""Train and load runs from Python (a notebook): the same runs as `run.py`, recorded the same
way (the local store, W&B), with the same checks.

    from bench.api import train, load
    record = train(model="vae", dataset="fashion_mnist", epochs=2, latent_dim=16)
    record["summary"]["test/psnr"], record["run_dir"]
    model, config = load(record["run_dir"])
"""
from __future__ import annotations


def train(**keys) -> dict:
    """One run from flat keys, as `run.py` takes them (`eval=["probe", "embed"]`,
    `mlp_dims=[400, 20]`, `wandb="disabled"`). Returns its record: `run_dir`, `status`,
    `exit_code`, the resolved `config` (config.json) and `summary` (summary.json). Bad input
    raises `bench.core.errors.UsageError` with the same one-line message, before any run exists."""
    from bench.run.runner import execute

    started = []
    code = execute([f"--{k}={_flag(v)}" for k, v in keys.items()], started=started.append)
    if not started:
        return {"run_dir": None, "status": None, "exit_code": code, "config": {}, "summary": {}}
    run = started[0]
    summary = run.read_summary()
    return {"run_dir": str(run.path), "status": summary.get("status"), "exit_code": code,
            "config": run.read_config(), "summary": summary}


def load(run: str, runs_dir: str = "runs", which: str = "best"):
    """(model in eval mode on the CPU, its config) of a finished or stopped run: a folder, an
    id in `runs_dir`, or `wandb:ENTITY/PROJECT/NAME:ALIAS`."""
    from bench.records.rebuild import load_run_model
    return load_run_model(run, runs_dir, which)


def _flag(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if value is None:
        return "none"
    return str(value).lower() if isinstance(value, bool) else str(value)
