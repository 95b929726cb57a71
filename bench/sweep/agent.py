"""Run a W&B sweep YAML locally, with W&B's own sweep engine (the PyPI package `sweeps`).

    python -m bench.sweep sweeps/fashion_vae_dims.yaml [--dry-run] [--workers N] [--count K]
        [--runs-dir runs] [run.py flags applied to every run, e.g. --epochs 1 --limit-train 5000]

A flag that names a swept parameter pins it: `--seed 1` runs the grid for seed 1 only.
`sweeps.next_run` proposes every run, so grid, random and bayes behave as on W&B. Each run is
`run.py --key=value ...`, what `wandb agent` executes (in a child forked from this runner, which
imported torch and the project once; `--spawn exec`: a fresh interpreter per run), recorded in
`runs/<sweep name>/`. Re-running the same command skips finished runs and re-runs failed or
interrupted ones; a failing run is recorded and the sweep goes on.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from bench.config.handoff import FLAG as HANDOFF_FLAG
from bench.config.handoff import Handoff
from bench.config.keys import own_keys
from bench.config.run_keys import FIELDS
from bench.core.errors import UsageError
from bench.core.files import atomic_write_text, last_line, open_nofollow, refuse_links, try_lock
from bench.core.signals import StopSignals, same_command
from bench.run import stopping
from bench.sweep import relay
from bench.sweep.file import config_key, fmt_value, sweep_name, varied
from bench.sweep.ledger import DONE, RESUMABLE, Ledger
from bench.sweep.plan import (SAY_GRID, auto_workers, available_cores, check_grid, collapse_note, failed_tools,
                              fixed_identity, gpu_count, in_space, plan, propose, stop_note)

ROOT = Path(__file__).resolve().parents[2]


def command_for(params: dict, fixed: list[str], name: str, runs_dir: str) -> list[str]:
    args = [f"--{k}={fmt_value(v)}" for k, v in params.items()]
    return [sys.executable, str(ROOT / "run.py"), *args, *fixed,
            f"--sweep={name}", f"--group={name}", f"--runs-dir={runs_dir}"]


class Sweep:
    """One local runner. Several may work on one sweep folder at once (or one restarted
    while the children of a killed one still run): each configuration is run under an
    exclusive lock, `locks/<hash>.lock`, that the child process inherits and holds until
    it exits, and a configuration is re-checked after its lock is taken, so no
    configuration ever runs twice."""

    def __init__(self, path, sweep_config, args, fixed, num_threads=None, overrides=None, carried=None):
        self.sweep_config, self.args, self.fixed = sweep_config, args, fixed
        self.overrides = dict(overrides or {})
        self.carried = [c for c in (carried if isinstance(carried, (list, tuple)) else [carried]) if c is not None]
        self.name = sweep_name(sweep_config, path)
        self.dir = Path(args.runs_dir) / self.name
        self.metric = sweep_config.get("metric", {}).get("name")
        self.ledger = Ledger(self.dir, self.metric)  # the folder's records, each summary read once per change
        self.fork = getattr(args, "spawn", "exec") == "fork"
        if self.fork:  # the runner itself never initialises CUDA: its children could not use it
            from bench.sweep.forked import gpu_info
            self.gpus, free = gpu_info()
        else:
            self.gpus, free = gpu_count(), None
        self.workers = args.workers if args.workers != "auto" else auto_workers(self.gpus, free)
        self.threads = num_threads or max(1, available_cores() // self.workers)
        self.pass_threads = num_threads is None  # a --num-threads given by the user is in `fixed`
        self.collapsed: list[str] = []  # ids of the finished runs that collapsed (set at the closing line)
        self.fail_reasons: list[str] = []  # why each failed run of this invocation failed
        self.overall: tuple[int, int] | None = None  # a suite's (runs of its datasets before this one, all its runs)

    def model_of(self, params) -> str:
        return str(params.get("model") or self.overrides.get("model") or FIELDS["model"].default)

    def carried_flags(self, params) -> dict:
        """Values carried to the runs of some models only: `--from-best` (a sweep's choice, for
        the models it trained) or a suite's (its latent size, for the families that take one)."""
        if not self.carried:
            return {}
        from registry import model_entry
        model = self.model_of(params)
        taken = model_entry(model).config_keys() | {"eval"}
        out = {}
        for choice in self.carried:
            if model in choice.models:  # an AE takes l1_lambda too, but is not the sweep's sparse AE
                out.update({k: v for k, v in choice.values.items() if k in taken})
        return out

    def carried_args(self, params) -> list[str]:
        """`carried_flags` as run.py flags."""
        return [f"--{k.replace('_', '-')}={fmt_value(v)}" for k, v in self.carried_flags(params).items()]

    def carried_reason(self, params) -> str:
        model = self.model_of(params)
        return "; ".join(c.reason for c in self.carried if c.reason and model in c.models)

    def identity(self, params) -> str:
        """The runner's flags that change this run's results (`--limit-train`, carried values)."""
        return fixed_identity(dict(self.overrides, **self.carried_flags(params)))

    def run_key(self, params) -> str:
        """What a finished run stands for: its swept values and the result-changing flags."""
        return f"{config_key(params)}\n{self.identity(params)}"

    def handoff(self, params) -> Handoff:
        """What the run is handed besides its flags: its swept values, the result-changing flags,
        what the sweep varies, where carried values came from, and the early-termination rule
        (each run asks W&B's rule at its epoch boundaries, `bench.run.stopping`)."""
        rule = {k: self.sweep_config[k] for k in ("method", "metric", "early_terminate")} if self.sweep_config.get("early_terminate") \
            else None
        return Handoff(json.loads(config_key(params)), self.identity(params), tuple(varied(self.sweep_config)),
                       self.carried_reason(params) or None, rule)

    def lock_path(self, params) -> Path:
        return self.dir / "locks" / (hashlib.sha1(self.run_key(params).encode()).hexdigest()[:16] + ".lock")

    def launch(self, params, slot, lock_fd, resume: str | None = None):
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        extra = [f"--num-threads={self.threads}"] if self.pass_threads else []
        cmd = command_for(params, self.fixed + self.carried_args(params) + extra, self.name, str(self.dir))
        if resume:  # the same flags again: run.py checks them against the stopped run's record
            cmd.append(f"--resume={resume}")
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        env = dict(os.environ, PYTHONPATH=path)
        cmd.append(f"{HANDOFF_FLAG}={self.handoff(params).write(self.dir / 'logs' / (self.lock_path(params).stem + '.json'))}")
        if self.gpus > 1:
            env["CUDA_VISIBLE_DEVICES"] = str(slot % self.gpus)
        # One log per launch: the configuration's hash tells runs started in the same second apart.
        log = open_nofollow(self.dir / "logs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{self.lock_path(params).stem}.log")
        try:
            if self.fork:
                from bench.sweep.forked import ForkedRun
                proc = ForkedRun(cmd[1:], env, log, lock_fd)
            else:
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=os.getcwd(),
                                        pass_fds=(lock_fd,))
        finally:
            os.close(lock_fd)  # the child holds the lock now, until it exits
        return proc, log, time.time()

    def claim(self, params):
        """(lock fd, run to resume or None) for a configuration nobody runs and nobody finished,
        else None. A run that was interrupted or crashed (a signal, a cancelled or preempted Slurm
        task, a time limit, a kill) is resumed from its last checkpoint, not trained again."""
        (self.dir / "locks").mkdir(parents=True, exist_ok=True)
        fd = try_lock(self.lock_path(params))
        if fd is None:
            return None
        status, _, run_id = self.ledger.existing().get(self.run_key(params), (None, None, None))
        if status in DONE:
            os.close(fd)
            return None
        return fd, (run_id if status in RESUMABLE else None)

    def dry_run(self) -> int:
        """Print each run's command line and the count; nothing is written. A bayes sweep has
        no plan: each run is chosen from the results of the runs before it."""
        if self.sweep_config["method"] == "bayes":
            print(f"sweep {self.name}: method bayes chooses each run from the finished runs' {self.metric}, one "
                  f"at a time, so there is no plan to print; it will make at most {self.args.count} runs"
                  + self._early_note())
            return 0
        self.say_size()
        runs = plan(self.sweep_config, self.args.count)
        before = self.ledger.existing() if self.dir.is_dir() else {}
        skipped = 0
        for i, params in enumerate(runs, 1):
            cmd = command_for(params, self.fixed + self.carried_args(params), self.name, str(self.dir))
            status = before.get(self.run_key(params), (None,))[0]
            skipped += status in DONE
            print(f"{i:3d}  " + shlex.join(cmd[1:]) + (f"   # {status} already: skipped" if status in DONE else ""))
        print(f"{len(runs)} runs" + (f", {skipped} of them done already (skipped)" if skipped else "")
              + self._early_note())
        return 0

    def say_size(self) -> None:
        """A grid's size, said before it is planned when it is large (refused past MAX_GRID)."""
        if self.sweep_config["method"] != "grid":
            return
        n = check_grid(self.sweep_config, self.name)
        if n >= SAY_GRID:
            count = self.args.count
            print(f"sweep {self.name}: a grid of {n:,} configurations"
                  + (f"; --count {count} makes the first {min(count, n):,}" if count else f", {n:,} runs")
                  + " (a flag naming a swept key pins it)", flush=True)

    def _early_note(self) -> str:
        et = self.sweep_config.get("early_terminate")
        if not et:
            return ""
        param = self.sweep_config["parameters"].get("epochs", {})
        epochs = int(param.get("value", max(param.get("values") or [0]))) or None  # bands at or past it never act
        bands = [b for b in stopping.bands(self.sweep_config) if epochs is None or b < epochs][:6]
        return (f"; early_terminate {et['type']}: runs behind at epochs {', '.join(map(str, bands)) or '(none)'}"
                f" by {self.metric} are stopped there")

    def run(self) -> int:
        from tqdm import tqdm

        if self.sweep_config["method"] != "grid" and self.args.count is None:  # W&B's agents would run without end
            raise UsageError(f"method {self.sweep_config['method']} proposes runs without end; give --count K")
        if self.dir.is_symlink():
            refuse_links(f"sweep {self.name}", self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        for own in (self.dir / "sweep.yaml", self.dir / "logs", self.dir / "locks"):
            if os.path.lexists(own):
                refuse_links(f"sweep {self.name}", own)
        atomic_write_text(self.dir / "sweep.yaml", yaml.safe_dump(self.sweep_config, sort_keys=False))
        prior = self.ledger.existing()
        finished = [(json.loads(k.split("\n")[0]), k, m, s) for k, (s, m, _) in prior.items() if s in DONE]
        done = [(p, m, s) for p, k, m, s in finished if in_space(p, self.sweep_config) and k == self.run_key(p)]
        other = sum(1 for p, k, *_ in finished if k != self.run_key(p))
        self.say_size()
        total = len(plan(self.sweep_config, self.args.count)) if self.sweep_config["method"] == "grid" else self.args.count
        print(f"sweep {self.name}: {len(done)} finished already, {total} in all, "
              f"{self.workers} worker(s) x {self.threads} thread(s) -> {self.dir}", flush=True)
        if other > 0:
            print(f"sweep {self.name}: {other} finished run(s) in the folder were made with other runner flags "
                  f"(e.g. --limit-train); they are kept but not counted for these settings", flush=True)
        if self.fork:
            from bench.sweep.forked import prewarm
            evals = json.dumps([v for k, v in self.sweep_config["parameters"].items() if k == "eval"]) \
                + " ".join(f for f in self.fixed if f.startswith("--eval="))
            prewarm(tools=evals.strip("[] ") != "", embed="embed" in evals or "all" in evals)
        bar = tqdm(total=total, initial=len(done), desc=self.name, unit="run", file=sys.stderr,
                   disable=not sys.stderr.isatty())
        failed, elsewhere = [], []
        started, before = time.time(), len(done)

        def report(line: str) -> None:
            bar.update(1)
            n = len(done) + len(failed)
            per_run = (time.time() - started - relay.one_off_since(self.dir, started)) / max(1, n - before)
            offset, of = self.overall or (0, total)  # a suite counts over all its datasets' runs
            left = f", ~{per_run * (of - offset - n) / 60:.0f} min left" if of and offset + n < of else ""
            tqdm.write(f"[{offset + n}/{of}{left}] {line}", file=sys.stdout)  # above the bar, never on its line
            sys.stdout.flush()

        with StopSignals() as stop:  # a signal stops new launches and is passed on to the running ones
            self._launch_all(done, failed, elsewhere, stop, report)
        bar.close()
        print(self._closing(done, failed, elsewhere, stop.signum), flush=True)
        if stop.signum is not None:
            print(f"sweep {self.name}: interrupted; the same command resumes it (finished runs are kept): "
                  f"{same_command()}", flush=True)
            return 128 + stop.signum
        return 0 if not failed else 1

    def _closing(self, done: list, failed: list, elsewhere: list, signum) -> str:
        """The sweep's closing line: its counts, each over every finished run of these settings
        (earlier invocations' too), and the one reason where every run failed for it."""
        now = self.ledger.existing()
        other = [p for p in elsewhere if now.get(self.run_key(p), (None,))[0] != "finished"]
        stopped = sum(1 for _, _, s in done if s == "stopped")
        self.collapsed = [rid for p, *_ in done if (rid := now.get(self.run_key(p), (None, None, None))[2])
                          and collapse_note(self.ledger.summary(rid))]
        one_reason = not done and signum is None and len(set(self.fail_reasons)) == 1 and self.fail_reasons[0]
        return (f"sweep {self.name}: {len(done) - stopped} finished, "
                + (f"{stopped} stopped early by {self.sweep_config['early_terminate']['type']} "
                   f"({self.epochs_trained()} epochs trained), " if self.sweep_config.get("early_terminate") else "")
                + f"{len(failed)} failed or interrupted"
                + (f", {len(self.collapsed)} of the finished collapsed (see the table's `collapsed` column)"
                   if self.collapsed else "")
                + (f", {len(other)} running under another runner" if other else "")
                + (f"; every run failed: {self.fail_reasons[0]}" if one_reason else "")
                + f"; table: python -m analysis.tables --runs {self.args.runs_dir} --sweep {self.name}")

    def _launch_all(self, done: list, failed: list, elsewhere: list, stop, report) -> None:
        """Launch proposed configurations into free worker slots until none is left (or a
        signal arrives: the running ones are then passed SIGINT); each finished run is
        appended to `done` or `failed` and reported as one line."""
        running, slots = {}, list(range(self.workers))
        grid = self._grid_left(done) if self.sweep_config["method"] == "grid" else None
        while True:
            while slots and stop.signum is None:
                params = next(grid, None) if grid is not None else \
                    propose(self.sweep_config, done, self.args.count, [p for p, *_ in running.values()] + failed + elsewhere)
                if params is None:
                    break
                claimed = self.claim(params)
                if claimed is None:  # running or finished under another runner
                    elsewhere.append(params)
                    continue
                fd, resume = claimed
                slot = slots.pop(0)
                proc, log, t0 = self.launch(params, slot, fd, resume)
                running[proc.pid] = (params, proc, log, t0, slot)
            if not running:
                return
            relay.wait(running)  # 0.2 s; and the running runs' progress lines to the console
            for pid, (params, proc, log, t0, slot) in list(running.items()):
                if proc.poll() is None:
                    if stop.signum is not None:
                        proc.send_signal(signal.SIGINT)
                    continue
                log.close()
                del running[pid]
                slots.append(slot)
                report(self._outcome(params, proc, log, t0, done, failed))

    def _grid_left(self, done: list):
        """The grid's configurations not done before this invocation, in one pass over the plan:
        launching a grid of n runs is linear in n (the engine's `next_run`, which holds the same
        configurations, enumerates the whole grid at every call). What this invocation launches
        is behind the cursor, so nothing is proposed twice."""
        finished = {config_key(p) for p, *_ in done}
        return (p for p in plan(self.sweep_config, self.args.count) if config_key(p) not in finished)

    def _outcome(self, params, proc, log, t0, done: list, failed: list) -> str:
        """Record a finished process's run as done or failed; its one-line summary."""
        status, metric, run_id = self.ledger.existing().get(self.run_key(params), ("failed", None, "?"))
        summary = self.ledger.summary(run_id)
        tools = failed_tools(summary)
        collapsed = collapse_note(summary) if status in DONE else None
        if status in DONE:
            done.append((params, metric, status))
        else:
            failed.append(params)  # why: the run's recorded reason, or its log's last line (refused before a run)
            self.fail_reasons.append(str(summary.get("reason") or "") or last_line(log.name))
        shown = f"{self.metric}={metric:.4g}" if isinstance(metric, float) else f"exit {proc.returncode}"
        return (f"{status:<11} {time.time() - t0:6.1f}s  {shown}  "
                + " ".join(f"{k}={fmt_value(v)}" for k, v in own_keys(params).items())
                + (f"  ({stop_note(summary)})" if status == "stopped" else "")
                + (f"  {collapsed}" if collapsed else "")
                + (f"  eval failed: {', '.join(tools)}" if tools else "")
                + (f"  log: {log.name}" if status not in DONE else ""))

    def epochs_trained(self) -> int:
        """Epochs trained by the runs of this sweep folder made with these runner flags."""
        return sum(r.epochs for r in self.ledger.records() if r.fixed == self.identity(json.loads(r.key)))
