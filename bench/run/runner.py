"""One run end to end: resolve config, build, train, evaluate, record.

Everything that can be refused (names, ranges, shapes, data, parameter budget, resume
mismatches) is checked before a run directory exists, so bad input never leaves a run
behind. Exit codes: 0 finished, 1 failed (diverged or crashed), 2 bad input,
130/143 interrupted by SIGINT/SIGTERM.
"""
from __future__ import annotations

import dataclasses
import json
import signal
import sys
import time
import traceback

import torch

from bench.config.cli import parse_args
from bench.config.handoff import take as take_handoff
from bench.config.run_keys import default_record
from bench.core import faults
from bench.core.errors import UsageError, exit_usage
from bench.core.signals import Interrupted, StopSignals
from bench.records import checkpoint
from bench.run.prepare import build, resolve_run, seed_everything
from bench.run.train import Diverged, Trainer, read_resumable


class Phases:
    """Which phase a run is in, its wall time per phase, and SIGINT/SIGTERM outside the
    training loop: between run creation and the end, a signal raises `Interrupted(signum,
    phase)` at once (the training loop stops between steps instead). The signal is also
    remembered, so a library that swallows the exception (UMAP's worker pool) cannot turn
    a stop into a finished run: the next phase raises."""

    def __init__(self, before: dict | None = None):
        self.name = "start-up"
        self.seconds, self.t = dict(before or {}), time.perf_counter()
        self.signals = StopSignals(raising=True, where=lambda: self.name)

    def __enter__(self):
        self.signals.__enter__()
        return self

    def __exit__(self, *exc):
        self.signals.__exit__(*exc)

    def enter(self, name: str) -> None:
        self.signals.check()
        self._close()
        self.name = name
        faults.point(name)

    def _close(self) -> None:
        now = time.perf_counter()
        self.seconds[self.name] = self.seconds.get(self.name, 0.0) + now - self.t
        self.t = now

    def times(self) -> dict:
        """Wall seconds per phase so far (`time/phase/<name>`), what `bench.speed --per-run` reads."""
        from bench.core.progress import ONE_OFF
        self._close()
        return dict({f"time/phase/{k}": round(v, 4) for k, v in self.seconds.items()},
                    **{"time/one_off_seconds": round(ONE_OFF[0], 4)})


@dataclasses.dataclass
class Job:
    """One run's parts, each built once: what `execute` prepared before the run existed,
    then the W&B tracking and the trainer as the run's phases create them."""
    run: object
    resumed: bool
    spec: object  # the run's frozen RunSpec (bench.config.spec); --amp auto settles into a copy before training
    model: torch.nn.Module
    data: object
    device: torch.device
    n_params: int
    resume: dict | None  # the checked last.pt of a resumed run
    record: dict = dataclasses.field(default_factory=dict)  # config.json, and every checkpoint's config
    tools: list = dataclasses.field(default_factory=list)  # the evaluation tools to run after training
    tracking: object = None
    trainer: Trainer | None = None
    extra: dict = dataclasses.field(default_factory=dict)  # summary numbers so far

    def epochs_done(self) -> int:
        if self.trainer is not None:
            return self.trainer.state.epoch
        return (self.resume or {}).get("state", {}).get("epoch", 0)


def execute(argv: list[str], log=print, started=None) -> int:
    """One run from run.py's flags; its exit code. `started(run)` is called once the run
    folder exists (`bench.api.train` reads the record from it)."""
    import psutil

    from bench.records.store import RunDir
    from registry import describe

    # Interpreter start and imports: from process creation to here (what every run pays first).
    before = {"imports": max(0.0, time.time() - psutil.Process().create_time())}
    t = time.perf_counter()
    argv, handoff = take_handoff(argv)  # read once; carried in the spec from here on
    overrides, actions = parse_args(argv)
    if "list" in actions:
        print(describe())
        return 0
    spec, resume_run = resolve_run(overrides)
    spec = dataclasses.replace(spec, handoff=handoff)
    if spec.num_threads:
        torch.set_num_threads(spec.num_threads)
    seed_everything(spec.seed, spec.compile)
    before["config"] = time.perf_counter() - t
    model, data, device, n_params = build(spec, before)
    t = time.perf_counter()
    chosen_tools = []
    if spec.eval:
        from bench import tools
        # Unknown tools, and tools this model or data cannot serve, are refused before training.
        chosen_tools = tools.applicable(spec.eval, model, data.kind, data, spec)
    if "print_config" in actions:
        from bench.records.track import resolve_wandb_mode

        shown = dict(spec.to_dict(), eval=chosen_tools)
        shown["wandb"] = resolve_wandb_mode(shown.get("wandb"))  # the mode this run would use, not null
        print(json.dumps(shown, indent=2, sort_keys=True))
        return 0
    resume = None
    if resume_run and resume_run.ckpt("last").exists():  # a bad checkpoint is refused here, untouched
        resume = read_resumable(resume_run.ckpt("last"), model, spec)
    run = resume_run or RunDir.create(spec.runs_dir, spec.model, spec.dataset)
    if started is not None:
        started(run)
    before["model"] += time.perf_counter() - t  # checkpoint check
    job = Job(run, resume_run is not None, spec, model, data, device, n_params, resume,
              record=dict(spec.to_dict(), eval=chosen_tools), tools=chosen_tools)
    with Phases(before) as phases:
        return _supervised(job, phases, log)


def _supervised(job: Job, phases: Phases, log) -> int:
    """Everything that happens to an existing run; whatever stops it, its status is recorded."""
    run, spec = job.run, job.spec
    exit_code, status, last = 0, "finished", None
    try:
        _train_and_evaluate(job, phases, log)
        if job.trainer.state.stopped:  # ended by the sweep's early termination, with its test numbers
            status = "stopped"
            job.extra.update(stopped_epoch=job.trainer.state.epoch, stop_reason=job.trainer.state.stopped)
    except Diverged as e:
        exit_code, status = 1, "failed"
        job.extra = {"reason": str(e), "failed_epoch": e.epoch, "failed_step": e.step, "epochs": job.epochs_done()}
        kept = (f"last good checkpoint (epoch {job.epochs_done()}) kept at {run.ckpt('last')}"
                if run.ckpt("last").exists() else "no epoch finished, so no checkpoint")
        log(f"run {run.id} failed: {e}; {kept}")
    except (Interrupted, KeyboardInterrupt) as e:
        signum = getattr(e, "signum", signal.SIGINT)
        reason = str(e) if isinstance(e, Interrupted) else f"SIGINT received during {phases.name}"
        exit_code, status = 128 + signum, "interrupted"
        job.extra.update(reason=reason, epochs=job.epochs_done())
        last = (f"run {run.id} interrupted ({reason}) after {job.epochs_done()} finished epochs; "
                f"continue with: python run.py --resume {run.id} --runs-dir {spec.runs_dir}")
    except OSError as e:  # full or unwritable storage: recorded where possible, one line, exit 2
        exit_code, status = 2, "failed"
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        job.extra.update(reason=f"storage error: {e.strerror or type(e).__name__}{where}", epochs=job.epochs_done())
        print(f"run.py: error: run {run.id}: {job.extra['reason']}", file=sys.stderr)
    except UsageError as e:  # bad input found late (a tool's refusal is caught inside run_extra)
        exit_code, status = 2, "failed"
        job.extra.update(reason=str(e), epochs=job.epochs_done())
        print(f"run.py: error: {' '.join(str(e).split())}", file=sys.stderr)
    except BaseException as e:
        exit_code, status = 1, "failed"
        job.extra.update(reason=f"{type(e).__name__}: {e}", traceback=traceback.format_exc()[-4000:],
                         epochs=job.epochs_done())
        raise
    finally:
        with phases.signals.recording_only():
            _finish(run, job.tracking, status, dict(job.extra, **phases.times()), exit_code)
    # Last on screen, after W&B's own footer: the test numbers, the run folder, what next.
    if status in ("finished", "stopped"):
        log(summary_line(job.extra))
    log(f"status {status}  run dir {run.path}"
        + (f"  (early termination after epoch {job.extra['stopped_epoch']}/{spec.epochs}: {job.extra['stop_reason']})"
           if status == "stopped" else ""))
    if last:
        print(last, file=sys.stderr)
    if status in ("finished", "stopped"):
        log(next_steps(run, spec, job.tracking, job.model, job.data.kind))
        from bench.records.health import collapse_words

        if collapse_words(job.extra):  # the very last line, where the eye lands
            log(f"run {run.id}: {collapse_words(job.extra)}")
    return exit_code


def settings_line(record: dict, spec) -> str:
    """The keys that differ from the chosen model's defaults, one short line
    (`--print-config` prints every key)."""
    defaults = default_record(spec.model_entry, spec.dataset_entry)
    changed = {k: v for k, v in record.items() if k not in ("model", "task") and defaults.get(k, object()) != v}
    shown = " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in sorted(changed.items()))
    return f"settings {record['model']} ({record.get('task')})" + (f": {shown}" if shown else ": all defaults") \
        + "  (--print-config shows every key)"


def summary_line(extra: dict) -> str:
    """The test numbers of best.pt, one line."""
    from bench.records.health import collapse_words

    line = "summary " + "  ".join(f"{k} {v:.4f}" for k, v in extra.items()
                                  if k.startswith("test") and isinstance(v, float))
    words = collapse_words(extra)
    return line + (f"  {words}" if words else "")


def _train_and_evaluate(job: Job, phases: Phases, log) -> None:
    """The run's phases in order; each one's wall time is recorded as `time/phase/<name>`."""
    from bench.records.track import Tracking
    from bench.run.evaluate import run_extra
    from bench.run.stopping import EarlyStop

    _start(job, log)
    phases.enter("wandb_init")
    job.tracking = Tracking(job.record, job.run)
    job.run.update_summary(wandb_mode=job.tracking.wandb_mode)
    phases.enter("setup")
    step_fn = _setup(job, log)
    job.trainer = Trainer(job.model, job.data, job.spec, job.run, job.tracking, job.device, log=log,
                          record=job.record, resume=job.resume, step_fn=step_fn,
                          early_stop=EarlyStop.of(job.spec.handoff, job.run))
    phases.enter("training")
    state = job.trainer.fit()
    job.run.update_summary(**job.trainer.cost_summary())
    phases.enter("test_evaluation")
    _test_evaluation(job, state, log)
    if job.tools:
        job.extra.update(run_extra(job.tools, job.model, job.data, job.spec, job.run, job.device, job.tracking,
                                   before_each=lambda name: phases.enter(f"eval:{name}")))
    phases.enter("finish")
    job.tracking.log_checkpoints(job.run, job.spec.wandb_artifacts)


def _start(job: Job, log) -> None:
    """config.json (a new run only), the run's first summary and its opening log lines."""
    run, spec, model, data = job.run, job.spec, job.model, job.data
    if not job.resumed:
        run.write_config(job.record)
    log(settings_line(job.record, spec))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log(f"run {run.id}  model {spec.model} ({job.n_params:,} params, {trainable:,} trainable)  data {spec.dataset} "
        f"train/val/test {len(data.train)}/{len(data.val)}/{len(data.test)}  device {job.device}")
    run.mark_running()
    run.update_summary(n_train=len(data.train), n_val=len(data.val), n_test=len(data.test),
                       input_shape="x".join(map(str, data.shape)), device_used=str(job.device),
                       params=job.n_params, trainable_params=trainable, model=spec.model, dataset=spec.dataset,
                       run_id=run.id, sweep=spec.sweep, group=spec.group,
                       **sweep_record(spec.handoff),
                       shorthand_keys=",".join(shorthand_keys(spec.family)))
    if job.resumed:
        # The checkpoint's history is the truth: drop rows of an epoch that never checkpointed.
        history = (job.resume or {}).get("state", {}).get("history", [])
        run.rewrite_metrics(history)
        log(f"resumed {run.id} after epoch {job.epochs_done()}")


def sweep_record(handoff) -> dict:
    """What summary.json says of the sweep values a run stands for (None outside a local sweep)."""
    if handoff is None:
        return dict(sweep_params=None, sweep_fixed=None, from_best=None)
    return dict(sweep_params=json.dumps(handoff.params, sort_keys=True), sweep_fixed=handoff.fixed,
                from_best=handoff.from_best)


def shorthand_keys(family) -> list[str]:
    """The family's keys that only set others (`mlp_dims`): analysis shows them in place of
    the keys they set, reading this list from the record (it imports no family)."""
    from bench.config.keys import cli_keys

    return [k for k, f in cli_keys(type(family)).items() if f.metadata.get("shorthand")] if family else []


def _setup(job: Job, log):
    """Model and data on the device, mixed precision chosen, the step compiled: returns
    the callable a training step runs."""
    spec, model, run = job.spec, job.model, job.run
    model.to(job.device)
    if spec.channels_last:
        model.to(memory_format=torch.channels_last)
    job.data = job.data.to(job.device)
    if spec.amp == "auto":  # chosen once per run: a resumed run keeps its first choice
        from bench.run.train import choose_amp
        amp = run.read_summary().get("amp_chosen") if job.resumed else None
        amp = amp or choose_amp(model, job.data.train, spec.batch_size, job.device, spec.channels_last)
        run.update_summary(amp_chosen=amp)
        log(f"--amp auto: {amp}")
        job.spec = spec.with_keys(amp=amp)  # what training runs with; the record keeps what was asked
    return torch.compile(model) if spec.compile else model


def _test_evaluation(job: Job, state, log) -> None:
    """Test metrics of best.pt, recorded before any optional tool runs: a tool that fails
    or a stop cannot lose them."""
    from bench.run.evaluate import image_table, record_results, test_evaluation

    model, run, device = job.model, job.run, job.device
    best_path = run.ckpt("best")
    checkpoint.load_weights(model, checkpoint.load(best_path, map_location=device), best_path)
    results, figs = test_evaluation(model, job.data, job.spec, run, device, state.history, state.snapshots)
    job.extra = dict({k: v for k, v in state.history[-1].items() if k.startswith(("train/", "val/"))},
                     **results, epochs=state.epoch, best_epoch=state.best_epoch,
                     **{"test/from_checkpoint": f"best.pt (epoch {state.best_epoch})"},
                     train_seconds=state.train_seconds, compile_seconds=state.compile_seconds,
                     images_per_sec=_mean_rate(state.history), params=job.n_params)
    record_results(run, job.tracking, job.extra, figs)
    if model.reconstructs:
        job.tracking.log_table("test_images", *image_table(model, job.data, job.spec, device))
    if job.tools:  # the tools may take a while: the test numbers now, and again at the end
        log(summary_line(results))


def next_steps(run, spec, tracking, model=None, data_kind: str = "") -> str:
    """What to run after a finished run: its report, a table, the latent-space tools this model
    and data can serve (none are suggested that would be refused), and the W&B upload if offline."""
    from bench import tools

    usable = [t for t in ("probe", "embed", "sample")
              if model is None or not tools.missing_needs(t, model, data_kind)]
    # The report of this run alone (a run folder is a store of one), or of its whole sweep
    report = (f"--runs {spec.runs_dir} --sweep {spec.sweep} --out reports/{spec.sweep}" if spec.sweep
              else f"--runs {run.path} --out reports/{run.id}")
    lines = ["next:",
             f"  python -m analysis.report {report}   # HTML + markdown report",
             f"  python -m analysis.tables --runs {spec.runs_dir}{' --sweep ' + spec.sweep if spec.sweep else ''}"
             f"   # comparison table",
             *([f"  python -m bench.evaluate {run.path} --what {','.join(usable)}   # latent-space tools"]
               if usable else [])]
    folders = tracking.offline_dirs(run) if tracking is not None else []
    if folders:
        from bench.records.track import sync_hint
        lines.append(sync_hint(folders))
    return "\n".join(lines)


def _finish(run, tracking, status, extra, exit_code) -> None:
    """Record the final status; a full disk may refuse even that (the run then reads as crashed)."""
    # A resumed run that finishes no longer carries why it stopped before.
    stale = ("reason", "failed_epoch", "failed_step", "traceback") if status in ("finished", "stopped") else ()
    try:
        summary = run.update_summary(forget=stale, status=status, finished_at=time.time(), **extra)
    except OSError as e:
        print(f"warning: could not record status {status} in {run.path} ({e.strerror}); "
              f"it will read as crashed", file=sys.stderr)
        summary = {}
    if tracking is not None:
        tracking.log_summary({k: v for k, v in summary.items() if k not in ("traceback",)}, local=False)
        tracking.finish(exit_code)
    run.stop_heartbeat()


def _mean_rate(history):
    rates = [r["time/images_per_sec"] for r in history]
    return sum(rates) / len(rates) if rates else 0.0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from bench.config.cli import print_help
    from bench.records.store import release_run_locks

    try:
        if print_help(argv):  # `aebench-run --help` prints what `python run.py --help` prints
            return 0
        return execute(argv)
    except UsageError as e:
        from bench.config.cli import as_typed
        exit_usage("run.py", as_typed(e, argv))
    except (KeyboardInterrupt, Interrupted) as e:  # before any run existed: nothing to record
        print("interrupted before the run started", file=sys.stderr)
        return 128 + getattr(e, "signum", signal.SIGINT)
    finally:
        release_run_locks()
