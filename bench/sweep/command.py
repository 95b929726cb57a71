"""The command line of `python -m bench.sweep SWEEP.yaml` (and `aebench-sweep`): its flags, the
run.py flags given for every run checked and pinned into the sweep, `--from-best`, and the
choice between a local runner (`bench.sweep.agent`) and a Slurm array (`bench.sweep.slurm`).
"""
from __future__ import annotations

import argparse
import os

from bench.config.cli import parse_args
from bench.config.run_keys import coerce, validate_value
from bench.core.errors import UsageError, exit_usage
from bench.sweep import agent
from bench.sweep.agent import Sweep
from bench.sweep.file import canonical_key, check_name, fmt_value, load_sweep, sweep_name
from bench.sweep.plan import missing_data, parse_workers, pinned, seed_search


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.sweep", description="Run a W&B sweep YAML locally, with W&B's own sweep engine (the PyPI package `sweeps`).", allow_abbrev=False)
    p.add_argument("yaml", help="sweep YAML (W&B format)")
    p.add_argument("--dry-run", action="store_true", help="print the runs and their count, then exit")
    p.add_argument("--workers", type=parse_workers, default=1,
                   help="runs at once (CPU threads are split among them), or auto: one per core on CPU, "
                        "as many as fit in GPU memory on CUDA")
    p.add_argument("--count", type=int, default=None, help="at most K runs (required for random/bayes)")
    p.add_argument("--search-seed", type=int, default=None, metavar="N",
                   help="seed the engine's random and bayes proposals, so a search can be repeated (W&B's own "
                        "server does not seed them; a Slurm array task adds its task id)")
    p.add_argument("--spawn", choices=["fork", "exec"], default="fork" if hasattr(os, "fork") else "exec",
                   help="fork: each run is a child of this runner, which imported torch and the project once "
                        "(seconds less per run); exec: each run is a fresh `python run.py ...` process")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--from-best", default=None, metavar="SWEEP",
                   help="carry the best configuration of a finished sweep (its swept values, e.g. l1_lambda) into "
                        "every run whose model takes them")
    p.add_argument("--within", type=float, default=0.0, metavar="PCT",
                   help="with --from-best: the largest swept value whose metric is within PCT%% of the best "
                        "(the strongest regularisation that costs at most PCT%%)")
    from bench.sweep import slurm

    slurm.add_arguments(p)
    p.error = lambda msg: exit_usage(p.prog, UsageError(msg))
    args, rest = p.parse_known_args(argv)
    try:
        if args.count is not None and args.count < 1:
            raise UsageError("--count must be >= 1")
        if not args.runs_dir.strip():
            raise UsageError("--runs-dir: empty; give a folder (or leave the flag out for 'runs')")
        if args.slurm is not None:
            slurm.check_request(args)
        sweep = _sweep_from(args, rest)
        if args.search_seed is not None:
            seed_search(args.search_seed + int(os.environ.get("SLURM_ARRAY_TASK_ID") or 0))
        if args.slurm is not None and not args.wandb_agent and sweep.sweep_config["method"] != "grid" and args.count is None:
            raise UsageError(f"method {sweep.sweep_config['method']} proposes runs without end; give --count K (the array's "
                             f"tasks stop once K runs of the sweep folder are done)")
        missing = None if args.dry_run else missing_data(sweep.sweep_config, sweep.overrides, sweep.name)
        if missing:  # refused before the first run, not once per failed run
            raise UsageError(missing)
        if args.slurm is not None:
            return slurm.submit(args, sweep, rest)
        return sweep.dry_run() if args.dry_run else sweep.run()
    except UsageError as e:
        exit_usage(p.prog, e)
    except OSError as e:  # a full or read-only disk under --runs-dir
        exit_usage(p.prog, UsageError(f"cannot write {e.filename or args.runs_dir}: {e.strerror or e}"))


def _sweep_from(args, rest: list[str]) -> Sweep:
    """The runner for the parsed command line: the sweep file checked, the run.py flags in `rest`
    validated and pinned into it, and the carried choice of `--from-best`."""
    overrides, _ = parse_args(rest, prog="bench.sweep")  # run.py flags for every run: validated now
    sweep_config = load_sweep(args.yaml)
    if not (agent.ROOT / "run.py").is_file():
        raise UsageError(f"run.py is not beside the installed package ({agent.ROOT}): a plain `pip install .` "
                         f"copies the library only; install from a clone with `pip install -e .`")
    swept = {canonical_key(k) for k in sweep_config["parameters"]}
    for k, v in overrides.items():
        if k not in swept:
            v = coerce(k, v)
            validate_value(k, v)
            check_name(k, v)
    # Other flags are appended to every run. A flag naming a swept parameter pins it, typed as run.py reads it; a comma list
    # for a scalar key (`--seed 1,2`) replaces the parameter's values (adds seeds to a grid).
    params = {canonical_key(k): k for k in sweep_config["parameters"]}
    for k in [k for k in overrides if k in params]:
        sweep_config["parameters"][params[k]] = pinned(k, overrides.pop(k))
    num_threads = coerce("num_threads", overrides["num_threads"]) if "num_threads" in overrides else None
    fixed = [f"--{k}={fmt_value(v)}" for k, v in overrides.items()]
    carried = None
    if args.from_best:
        from bench.sweep.best import from_best
        if not 0 <= args.within < 100:
            raise UsageError(f"--within {args.within:g}: give a percentage in [0, 100)")
        carried = from_best(args.runs_dir, args.from_best, args.within).into(sweep_config)
        print(f"sweep {sweep_name(sweep_config, args.yaml)}: carrying {carried.reason}", flush=True)
    return Sweep(args.yaml, sweep_config, args, fixed, num_threads, overrides, carried)
