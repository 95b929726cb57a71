"""A sweep as one Slurm job array: `python -m bench.sweep SWEEP --slurm N [--wait]`.

Each of the N array tasks runs the local sweep runner on the same sweep folder. The runner
takes each configuration under a lock held by the run's process, so across tasks every
configuration is trained exactly once; a task that is cancelled, preempted or killed by its
time limit leaves its runs `interrupted` (or `crashed`), and the same command submitted
again resumes them from their last checkpoint and skips the finished ones. Slurm does the
scheduling (`sbatch`, `squeue`, `scancel`); this module writes the batch script, submits it
and, with `--wait`, follows the sweep folder until the array ends. With `--wandb-agent
ENTITY/PROJECT/SWEEP_ID` the tasks run `wandb agent` instead (W&B's server then proposes).
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.core.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]


def add_arguments(p, agent: bool = True) -> None:
    g = p.add_argument_group("Slurm (one job array; see the README's 'On a Slurm cluster')")
    g.add_argument("--slurm", type=int, default=None, metavar="N", help="submit the sweep as a job array of N tasks")
    g.add_argument("--partition", default=None, help="Slurm partition (default: the cluster's default)")
    g.add_argument("--time", type=int, default=None, metavar="MIN", help="time limit of each task, in minutes")
    g.add_argument("--cpus-per-task", type=int, default=None, metavar="C", help="CPUs of each task (default 1)")
    g.add_argument("--gpus-per-task", type=int, default=None, metavar="G", help="GPUs of each task")
    g.add_argument("--mem", default=None, metavar="M", help="memory of each task, as sbatch reads it (e.g. 8G)")
    g.add_argument("--requeue", action="store_true", help="let Slurm requeue a preempted task")
    g.add_argument("--wait", action="store_true", help="follow the array until it ends, one line per finished run")
    if agent:
        g.add_argument("--wandb-agent", default=None, metavar="ENTITY/PROJECT/SWEEP_ID",
                       help="tasks run `wandb agent` on this W&B sweep instead of the local runner")


def check_request(args, local: str | None = None) -> None:
    """Bad input, refused in one line before anything is written or submitted. `local`: the
    command that runs the same work on this machine (said where there is no Slurm)."""
    if args.slurm < 1:
        raise UsageError(f"--slurm {args.slurm}: give a number of array tasks >= 1")
    for flag in ("time", "cpus_per_task", "gpus_per_task"):
        value = getattr(args, flag)
        if value is not None and value < (0 if flag == "gpus_per_task" else 1):
            raise UsageError(f"--{flag.replace('_', '-')} {value}: out of range")
    if getattr(args, "wandb_agent", None) is not None and (args.wandb_agent.count("/") != 2 or not all(args.wandb_agent.split("/"))):
        raise UsageError(f"--wandb-agent {args.wandb_agent!r}: give ENTITY/PROJECT/SWEEP_ID, as `wandb sweep` prints it")
    if args.dry_run:
        return
    if shutil.which("sbatch") is None:
        local = local or f"python -m bench.sweep {args.yaml} --workers auto"
        raise UsageError(f"--slurm: no `sbatch` on PATH, so this is not a Slurm login node; run it on this "
                         f"machine instead: {local}")
    if args.partition is not None:
        known = _lines(["sinfo", "-h", "-o", "%R"])
        if known is not None and args.partition not in known:
            raise UsageError(f"--partition {args.partition}: no such partition; valid: {', '.join(known) or 'none'}")


def _lines(cmd: list[str]) -> list[str] | None:
    """A Slurm command's output lines, or None when it fails (no controller answering)."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return [line.strip() for line in p.stdout.splitlines() if line.strip()] if p.returncode == 0 else None


def task_command(args, rest: list[str]) -> list[str]:
    """What each array task runs: the local runner on the shared sweep folder (absolute paths,
    the same run.py flags), or `wandb agent`."""
    if args.wandb_agent:
        return ["wandb", "agent", args.wandb_agent]
    cmd = [sys.executable, "-m", "bench.sweep", str(Path(args.yaml).resolve()),
           "--runs-dir", str(Path(args.runs_dir).resolve()), "--workers", str(args.workers), "--spawn", args.spawn]
    if args.count is not None:
        cmd += ["--count", str(args.count)]
    if args.search_seed is not None:
        cmd += ["--search-seed", str(args.search_seed)]
    if args.from_best:
        cmd += ["--from-best", args.from_best, "--within", str(args.within)]
    return cmd + rest


def script(args, name: str, folder: Path, rest: list[str], command: list[str] | None = None) -> str:
    """The sbatch script: readable, and what a person could submit by hand. `command`: what each
    task runs, when not the local sweep runner (a suite: the suite itself, on the same folder)."""
    opts = {"job-name": f"aebench-{name}", "array": f"0-{args.slurm - 1}",
            "output": str(folder.resolve() / "slurm" / "%A_%a.log"), "cpus-per-task": args.cpus_per_task or 1,
            "partition": args.partition, "time": args.time, "gpus-per-task": args.gpus_per_task or None,
            "mem": args.mem}
    lines = ["#!/bin/bash",
             f"# Sweep {name} as {args.slurm} Slurm array task(s), written by "
             f"`python {' '.join((command or ['', '-m', 'bench.sweep'])[1:3])} ... --slurm`.",
             "# Each task runs the local sweep runner on one shared sweep folder: its locks give every",
             "# configuration to exactly one task. Submit again to resume what a cancelled task left.",
             *(f"#SBATCH --{k}={v}" for k, v in opts.items() if v is not None),
             *(["#SBATCH --requeue"] if args.requeue else ["#SBATCH --no-requeue"]),
             f"cd {shlex.quote(os.getcwd())}",
             f"export PYTHONPATH={shlex.quote(str(ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}",
             'echo "task ${SLURM_ARRAY_TASK_ID} of job ${SLURM_ARRAY_JOB_ID} on $(hostname)'
             ' (CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-none})"',
             "exec " + shlex.join(command or task_command(args, rest))]
    return "\n".join(lines) + "\n"


def submit(args, sweep, rest: list[str], command: list[str] | None = None, table: str | None = None) -> int:
    """Write the script into the sweep folder and submit it (or print it, with --dry-run).
    `command` and `table`: each task's command and the command that reads the results, where
    they are not the sweep runner's and analysis.tables (a suite: itself and its leaderboard)."""
    text = script(args, sweep.name, sweep.dir, rest, command)
    if args.dry_run:
        print(text, end="")
        print(f"# --dry-run: nothing submitted; without it this is written to {sweep.dir / 'slurm'} and submitted")
        return 0
    if str(sweep.dir.resolve()).startswith(("/tmp/", "/var/tmp/", "/dev/shm/")):
        print(f"note: {sweep.dir} is under a node-local temporary folder: array tasks on other nodes would not see "
              f"it; give --runs-dir on a filesystem every node shares (your home or project space)", flush=True)
    from bench.core.files import atomic_write_text

    (sweep.dir / "slurm").mkdir(parents=True, exist_ok=True)
    path = sweep.dir / "slurm" / f"{sweep.name}.sbatch"
    atomic_write_text(path, text)
    p = subprocess.run(["sbatch", "--parsable", str(path)], capture_output=True, text=True)
    if p.returncode != 0:
        first = next((line for line in p.stderr.splitlines() if line.strip()), f"exit {p.returncode}")
        raise UsageError(f"--slurm: sbatch refused the job: {' '.join(first.split())[:200]}")
    job = p.stdout.strip().split(";")[0]
    runs = shlex.quote(str(args.runs_dir))
    table = table or f"python -m analysis.tables --runs {runs} --sweep {sweep.name}"
    print(f"submitted Slurm job {job}: {args.slurm} array task(s) of sweep {sweep.name} -> {sweep.dir}\n"
          f"  script: {path}\n  logs:   {sweep.dir / 'slurm'}/{job}_<task>.log\n"
          f"  follow: squeue -j {job}    cancel: scancel {job}\n"
          f"  table:  {table}", flush=True)
    if not args.wait:
        return 0
    return follow(job, sweep)


def follow(job: str, sweep) -> int:
    """One line per run as it ends, until no task of the array is left; Ctrl-C (or SIGTERM)
    cancels the array. The handlers are this process's own, as the local runner's are: a
    command started with SIGINT ignored (in the background of a script) stops the same way."""
    from bench.core.signals import Interrupted, StopSignals

    try:
        with StopSignals(raising=True, where=lambda: f"the wait on Slurm job {job}"):
            _follow(job, sweep)
    except Interrupted as e:
        subprocess.run(["scancel", job], capture_output=True)
        print(f"cancelled Slurm job {job}: its running runs are recorded interrupted; submit the same command "
              f"again to resume them", file=sys.stderr, flush=True)
        return 128 + e.signum
    return closing(sweep)


def _follow(job: str, sweep) -> None:
    from bench.sweep.ledger import DONE, existing

    started, seen = time.time(), {}
    before = {run_id: status for status, _, run_id in existing(sweep.dir, sweep.metric).values()}
    while True:
        queued = _lines(["squeue", "-h", "-j", job, "-o", "%i"])
        for key, (status, metric, run_id) in sorted(existing(sweep.dir, sweep.metric).items()):
            if status in DONE + ("failed",) and seen.get(run_id) != status and before.get(run_id) != status:
                seen[run_id] = status
                params = json.loads(key.split("\n")[0])
                shown = f"{sweep.metric}={metric:.4g}" if isinstance(metric, float) else ""
                print(f"[{time.time() - started:6.0f}s] {status:<9} {shown}  "
                      + " ".join(f"{k}={json.dumps(v) if isinstance(v, (list, dict)) else v}"
                                 for k, v in params.items()), flush=True)
        if not queued:  # the array has left the queue (or the controller forgot it)
            return
        time.sleep(2.0)


def closing(sweep) -> int:
    """The runner's closing line for the whole sweep folder, and each run left unfinished with its log."""
    from bench.sweep.ledger import DONE, existing

    now = existing(sweep.dir, sweep.metric)
    counts = {}
    for status, _, _ in now.values():
        counts[status] = counts.get(status, 0) + 1
    print(f"sweep {sweep.name}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + f" -> {sweep.dir}")
    bad = [(k, rid) for k, (s, _, rid) in now.items() if s not in DONE]
    for key, run_id in bad:
        stem = sweep.lock_path(json.loads(key.split("\n")[0])).stem  # a run's logs are named by its lock
        logs = sorted((sweep.dir / "logs").glob(f"*-{stem}.log"))
        print(f"  {now[key][0]}: {run_id}" + (f"  log: {logs[-1]}" if logs else ""))
    return 0 if not bad else 1
