"""One run end to end: resolve config, build, train, evaluate, record.

Everything that can be refused (names, ranges, shapes, data, parameter budget, resume
mismatches) is checked before a run directory exists, so bad input never leaves a run
behind. Exit codes: 0 finished, 1 failed (diverged or crashed), 2 bad input,
130/143 interrupted by SIGINT/SIGTERM.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import traceback

import torch

from bench.config import FIELDS, RESUME_FREE_KEYS, parse_args, resolve
from bench.errors import UsageError, exit_usage


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is visible; valid here: auto, cpu")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def resolve_run_config(overrides: dict):
    """(config, run dir to resume or None)."""
    from bench.store import find_run

    if not overrides.get("resume"):
        return resolve(overrides), None
    run = find_run(str(overrides["resume"]), overrides.get("runs_dir", "runs"))
    saved = run.read_config()
    for key, value in overrides.items():
        if key in RESUME_FREE_KEYS or key not in saved:
            continue
        mine = resolve({key: value}).to_dict()[key]
        if mine != saved[key]:
            raise UsageError(f"--resume {run.id}: --{key.replace('_', '-')} {mine!r} differs from the run's "
                             f"{saved[key]!r}; resume with the same config (only {', '.join(sorted(RESUME_FREE_KEYS - {'resume', 'config'}))} may change)")
    from bench.store import effective_status

    status = effective_status(run.read_summary(), run.path)
    if status == "running":
        raise UsageError(f"--resume {run.id}: the run is still running (pid {run.read_summary().get('pid')}); "
                         f"stop it first")
    if status == "finished":
        raise UsageError(f"--resume {run.id}: the run already finished; start a new run instead")
    merged = {k: v for k, v in saved.items() if k in FIELDS}
    merged.update({k: v for k, v in overrides.items() if k in RESUME_FREE_KEYS and k != "config"})
    return resolve(merged), run


def fill_model_defaults(cfg, model) -> None:
    """Write the model's effective values of model keys into the config (resolved config)."""
    mcfg = getattr(model, "cfg", None)
    if mcfg is None or not dataclasses.is_dataclass(mcfg):
        return
    for f in dataclasses.fields(mcfg):
        if hasattr(cfg, f.name) and getattr(cfg, f.name) is None:
            v = getattr(mcfg, f.name)
            setattr(cfg, f.name, list(v) if isinstance(v, tuple) else v)


def build(cfg):
    """Validate names, load data, build the model. Raises UsageError on any bad input."""
    from registry import count_params, create_model, dataset_entry, model_entry
    from bench.data import load_data

    if cfg.probe_from:
        cfg.model = "linear_probe"
    entry = model_entry(cfg.model)
    dentry = dataset_entry(cfg.dataset)
    task = "denoise" if entry.task == "reconstruct" and (cfg.noise_std or 0) > 0 else entry.task
    if cfg.task and cfg.task != task and {cfg.task, task} != {"reconstruct", "denoise"}:
        raise UsageError(f"--task {cfg.task}: model {cfg.model} does a {task} task; valid: {task}")
    needs = {"classify": "labels", "segment": "masks"}.get(task)
    if needs and dentry.kind != needs:
        raise UsageError(f"model {cfg.model} needs a dataset with {needs}; {cfg.dataset} has {dentry.kind}")
    device = pick_device(cfg.device)
    data = load_data(cfg, task)
    model = create_model(cfg.model, data.shape, data.num_classes, **cfg.to_dict())
    n_params = count_params(model)
    if cfg.max_params is not None and n_params > cfg.max_params:
        raise UsageError(f"{cfg.model} has {n_params:,} parameters, over --max-params {cfg.max_params:,}")
    fill_model_defaults(cfg, model)
    cfg.task = model.task
    return model, data, device, n_params


def execute(argv: list[str], log=print) -> int:
    from registry import describe
    from bench.evaluate import run_extra, test_evaluation
    from bench.store import RunDir
    from bench.track import Tracking
    from bench.train import Diverged, Interrupted, Trainer

    overrides, list_requested = parse_args(argv)
    if list_requested:
        print(describe())
        return 0
    cfg, resume_run = resolve_run_config(overrides)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    model, data, device, n_params = build(cfg)
    if cfg.eval:
        from bench import latent
        latent.expand(cfg.eval)  # unknown tool names are bad input: refuse before training

    run = resume_run or RunDir.create(cfg.runs_dir, cfg.model, cfg.dataset)
    resolved = cfg.to_dict()
    if not resume_run:
        run.write_config(resolved)
    log("config " + json.dumps(resolved, sort_keys=True))
    log(f"run {run.id}  model {cfg.model} ({n_params:,} params)  data {cfg.dataset} "
        f"train/val/test {len(data.train)}/{len(data.val)}/{len(data.test)}  device {device}")
    run.mark_running()
    run.update_summary(params=n_params, model=cfg.model, dataset=cfg.dataset, run_id=run.id,
                       sweep=cfg.sweep, group=cfg.group, sweep_params=os.environ.get("AEBENCH_SWEEP_PARAMS"))
    tracking = Tracking(resolved, run)
    run.update_summary(wandb_mode=tracking.wandb_mode)

    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    data = data.to(device)
    trainer = Trainer(model, data, cfg, run, tracking, device, log=log)
    if resume_run and run.ckpt("last").exists():
        trainer.restore()
        log(f"resumed {run.id} after epoch {trainer.state.epoch}")
    elif resume_run:
        run.rewrite_metrics([])
    if cfg.compile:
        trainer.step_fn = torch.compile(model)

    exit_code, status, extra = 0, "finished", {}
    try:
        state = trainer.fit()
        best = torch.load(run.ckpt("best"), map_location=device, weights_only=False)
        model.load_state_dict(best["model"])
        results, figs = test_evaluation(model, data, cfg, run, device, state.history, state.snapshots)
        tracking.log_images(figs)
        if cfg.eval:
            results.update(run_extra(cfg.eval, model, data, cfg, run, device, tracking))
        last = {k: v for k, v in state.history[-1].items() if k.startswith(("train/", "val/"))}
        extra = dict(last, **results, epochs=state.epoch, best_epoch=state.best_epoch,
                     train_seconds=state.train_seconds, compile_seconds=state.compile_seconds,
                     images_per_sec=_mean_rate(state.history), params=n_params)
        log("summary " + "  ".join(f"{k} {v:.4f}" for k, v in results.items()
                                   if k.startswith("test") and isinstance(v, float)))
    except Diverged as e:
        exit_code, status = 1, "failed"
        extra = {"reason": str(e), "failed_epoch": e.epoch, "failed_step": e.step,
                 "epochs": trainer.state.epoch}
        kept = (f"last good checkpoint (epoch {trainer.state.epoch}) kept at {run.ckpt('last')}"
                if run.ckpt("last").exists() else "no epoch finished, so no checkpoint")
        log(f"run {run.id} failed: {e}; {kept}")
    except Interrupted as e:
        exit_code, status = 128 + e.signum, "interrupted"
        extra = {"reason": str(e), "epochs": trainer.state.epoch}
        log(f"run {run.id} interrupted after {trainer.state.epoch} finished epochs; "
            f"continue with --resume {run.id}")
    except KeyboardInterrupt:  # Ctrl-C after training, during evaluation
        exit_code, status = 130, "interrupted"
        extra = {"reason": "SIGINT received during evaluation", "epochs": trainer.state.epoch}
    except BaseException as e:
        exit_code, status = 1, "failed"
        extra = {"reason": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-4000:],
                 "epochs": trainer.state.epoch}
        raise
    finally:
        summary = run.update_summary(status=status, finished_at=time.time(), **extra)
        tracking.log_summary({k: v for k, v in summary.items() if k not in ("traceback",)})
        tracking.finish(exit_code)
        run.stop_heartbeat()
    log(f"status {status}  run dir {run.path}")
    return exit_code


def _mean_rate(history):
    rates = [r["time/images_per_sec"] for r in history]
    return sum(rates) / len(rates) if rates else 0.0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        return execute(argv)
    except UsageError as e:
        exit_usage("run.py", e)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
