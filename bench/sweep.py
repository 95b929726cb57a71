"""Run a W&B sweep YAML locally, with W&B's own sweep engine (the PyPI package `sweeps`).

    python -m bench.sweep sweeps/fashion_vae_dims.yaml [--dry-run] [--workers N] [--count K]
        [--runs-dir runs] [run.py flags applied to every run, e.g. --epochs 1 --limit-train 5000]

A flag that names a swept parameter pins it: `--seed 1` runs the grid for seed 1 only.

`sweeps.next_run` proposes every run, so grid, random and bayes behave as on W&B. Each
run is `python run.py --key=value ...`, exactly what `wandb agent` executes, recorded
in `runs/<sweep name>/`. Re-running the same command skips finished runs and re-runs
failed or interrupted ones; a failing run is recorded and the sweep goes on.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import yaml

from bench.config import FIELDS, coerce, parse_args, validate_value
from bench.errors import UsageError, exit_usage

ROOT = Path(__file__).resolve().parents[1]


def load_sweep(path: str) -> dict:
    """Parse and validate a sweep YAML: W&B's schema, then run.py's keys, types and ranges."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sweeps
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise UsageError(f"cannot read sweep file {path}: {e.strerror or e}") from None
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UsageError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(cfg, dict):
        raise UsageError(f"{path}: a sweep config is a mapping with method, metric and parameters")
    violations = sweeps.schema_violations_from_proposed_config(cfg)
    if violations:
        raise UsageError(f"{path}: invalid sweep config: {violations[0]}")
    for name, spec in cfg["parameters"].items():
        key = name.replace("-", "_")
        if key not in FIELDS:
            raise UsageError(f"{path}: unknown parameter {name!r}; run.py keys: see `python run.py --help`")
        values = spec.get("values", [spec["value"]] if "value" in spec else [])
        if "values" in spec and not spec["values"]:
            raise UsageError(f"{path}: parameter {name!r} has an empty list of values")
        for v in values:
            try:
                validate_value(key, coerce(key, v))
            except UsageError as e:
                raise UsageError(f"{path}: parameter {name!r}: {e}") from None
    return cfg


def sweep_name(cfg: dict, path: str) -> str:
    return str(cfg.get("name") or Path(path).stem)


def fmt_value(v) -> str:
    """How a W&B agent writes a value on the command line."""
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def command_for(params: dict, fixed: list[str], name: str, runs_dir: str) -> list[str]:
    args = [f"--{k}={fmt_value(v)}" for k, v in params.items()]
    return [sys.executable, str(ROOT / "run.py"), *args, *fixed,
            f"--sweep={name}", f"--group={name}", f"--runs-dir={runs_dir}"]


def config_key(params: dict) -> str:
    return json.dumps({k: params[k] for k in sorted(params)}, sort_keys=True)


def propose(cfg: dict, done: list, count: int | None, pending: list | None = None):
    """The engine's next run (params dict) given finished and pending runs, or None.

    `pending` holds runs in flight and runs that failed in this invocation (so the
    engine moves on; a later invocation retries them)."""
    from sweeps import RunState, SweepRun, next_run

    runs = []
    for params, metric in done:
        r = SweepRun(config={k: {"value": v} for k, v in params.items()}, state=RunState.finished)
        if metric is not None:
            name = cfg.get("metric", {}).get("name")
            r.summary_metrics = {name: metric}
            r.history = [{name: metric}]
        runs.append(r)
    for params in pending or []:
        runs.append(SweepRun(config={k: {"value": v} for k, v in params.items()}, state=RunState.running))
    if count is not None and len(runs) >= count:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = next_run(cfg, runs, validate=False)
    return None if run is None else {k: v["value"] for k, v in run.config.items()}


def plan(cfg: dict, count: int | None) -> list[dict]:
    """Every run the engine proposes up front (grid), or the first `count` (random/bayes)."""
    if cfg["method"] != "grid" and count is None:
        raise UsageError(f"method {cfg['method']!r} proposes runs without end; give --count K")
    out = []
    while True:
        p = propose(cfg, [(q, None) for q in out], count)
        if p is None:
            return out
        out.append(p)


def existing(runs_dir: Path, metric: str | None) -> dict[str, tuple[str, float | None, str]]:
    """config key -> (status, metric value, run id) of runs already in the sweep folder.

    A finished run wins over failed attempts of the same configuration."""
    from analysis.load import load_local

    frame = load_local(str(runs_dir))
    out = {}
    for _, r in (frame.iterrows() if len(frame) and "sweep_params" in frame else []):
        key = r["sweep_params"]
        if not isinstance(key, str):
            continue
        value = r.get(metric) if metric else None
        value = float(value) if value is not None and value == value else None
        if key not in out or r["status"] == "finished":
            out[key] = (r["status"], value, r["run_id"])
    return out


class Sweep:
    def __init__(self, path, cfg, args, fixed):
        self.cfg, self.args, self.fixed = cfg, args, fixed
        self.name = sweep_name(cfg, path)
        self.dir = Path(args.runs_dir) / self.name
        self.metric = cfg.get("metric", {}).get("name")
        self.workers = max(1, args.workers)
        self.threads = max(1, (os.cpu_count() or 1) // self.workers)
        self.gpus = _gpu_count()

    def launch(self, params, slot):
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        cmd = command_for(params, self.fixed + [f"--num-threads={self.threads}"], self.name, str(self.dir))
        env = dict(os.environ, AEBENCH_SWEEP_PARAMS=config_key(params), PYTHONPATH=str(ROOT))
        if self.gpus > 1:
            env["CUDA_VISIBLE_DEVICES"] = str(slot % self.gpus)
        log = open(self.dir / "logs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{slot}-{os.getpid()}.log", "w")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=os.getcwd())
        return proc, log, time.time()

    def run(self) -> int:
        from tqdm import tqdm

        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "sweep.yaml").write_text(yaml.safe_dump(self.cfg, sort_keys=False))
        prior = existing(self.dir, self.metric)
        done = [(json.loads(k), m) for k, (s, m, _) in prior.items() if s == "finished" and k]
        total = len(plan(self.cfg, self.args.count)) if self.cfg["method"] == "grid" else self.args.count
        print(f"sweep {self.name}: {len(done)} finished already, {total} in all, "
              f"{self.workers} worker(s) x {self.threads} thread(s) -> {self.dir}", flush=True)
        bar = tqdm(total=total, initial=len(done), desc=self.name, unit="run", file=sys.stderr,
                   disable=not sys.stderr.isatty())
        running, failed, slots = {}, [], list(range(self.workers))
        stop = {"sig": None}
        old = {s: signal.signal(s, lambda n, f: stop.update(sig=n)) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while True:
                while slots and stop["sig"] is None:
                    params = propose(self.cfg, done, self.args.count, [p for p, *_ in running.values()] + failed)
                    if params is None:
                        break
                    slot = slots.pop(0)
                    proc, log, t0 = self.launch(params, slot)
                    running[proc.pid] = (params, proc, log, t0, slot)
                if not running:
                    break
                time.sleep(0.2)
                for pid, (params, proc, log, t0, slot) in list(running.items()):
                    if proc.poll() is None:
                        if stop["sig"] is not None:
                            proc.send_signal(signal.SIGINT)
                        continue
                    log.close()
                    del running[pid]
                    slots.append(slot)
                    status, metric, run_id = existing(self.dir, self.metric).get(config_key(params), ("failed", None, "?"))
                    if status == "finished":
                        done.append((params, metric))
                    else:
                        failed.append(params)
                    bar.update(1)
                    shown = f"{self.metric}={metric:.4g}" if isinstance(metric, float) else f"exit {proc.returncode}"
                    print(f"[{len(done) + len(failed)}/{total}] {status:<11} {time.time() - t0:6.1f}s  {shown}  "
                          + " ".join(f"{k}={fmt_value(v)}" for k, v in params.items()), flush=True)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            bar.close()
        print(f"sweep {self.name}: {len(done)} finished, {len(failed)} failed or interrupted; "
              f"table: python -m analysis.tables --runs {self.args.runs_dir} --sweep {self.name}", flush=True)
        if stop["sig"] is not None:
            return 128 + stop["sig"]
        return 0 if not failed else 1


def _gpu_count() -> int:
    try:
        import torch
        return torch.cuda.device_count()
    except Exception:
        return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__.splitlines()[0])
    p.add_argument("yaml", help="sweep YAML (W&B format)")
    p.add_argument("--dry-run", action="store_true", help="print the runs and their count, then exit")
    p.add_argument("--workers", type=int, default=1, help="runs at once (CPU threads are split)")
    p.add_argument("--count", type=int, default=None, help="at most K runs (required for random/bayes)")
    p.add_argument("--runs-dir", default="runs")
    p.error = lambda msg: exit_usage(p.prog, UsageError(msg))
    args, rest = p.parse_known_args(argv)
    try:
        if args.workers < 1 or (args.count is not None and args.count < 1):
            raise UsageError("--workers and --count must be >= 1")
        overrides, _ = parse_args(rest, prog="bench.sweep")  # run.py flags for every run: validated now
        for k, v in overrides.items():
            validate_value(k, coerce(k, v))
        cfg = load_sweep(args.yaml)
        # A flag naming a swept parameter pins it (`--seed 1` runs the grid for seed 1 only);
        # other flags are appended to every run.
        params = {k.replace("-", "_"): k for k in cfg["parameters"]}
        for k in [k for k in overrides if k in params]:
            cfg["parameters"][params[k]] = {"value": overrides.pop(k)}
        fixed = [f"--{k}={fmt_value(v)}" for k, v in overrides.items()]
        if args.dry_run:
            runs = plan(cfg, args.count)
            name = sweep_name(cfg, args.yaml)
            for i, params in enumerate(runs, 1):
                print(f"{i:3d}  " + shlex.join(command_for(params, fixed, name, str(Path(args.runs_dir) / name))[1:]))
            print(f"{len(runs)} runs")
            return 0
        return Sweep(args.yaml, cfg, args, fixed).run()
    except UsageError as e:
        exit_usage(p.prog, e)


if __name__ == "__main__":
    sys.exit(main())
