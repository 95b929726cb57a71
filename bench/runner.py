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
import signal
import sys
import time
import traceback
from pathlib import Path

import torch

from bench import checkpoint, faults
from bench.config import FIELDS, RESUME_FREE_KEYS, canonical, default_record, parse_args, resolve
from bench.errors import UsageError, exit_usage
from bench.signals import Interrupted, StopSignals
from bench.train import Diverged, Trainer, read_resumable


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is visible; valid here: auto, cpu")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int, compile: bool = False) -> None:
    import random
    import warnings

    import numpy as np

    # Deterministic algorithms are asked for with warn_only: an operation without a deterministic
    # kernel (max_unpool2d of pool_ae) says so once per process, a notice about torch, not the run.
    warnings.filterwarnings("ignore", message=".*does not have a deterministic implementation", category=UserWarning)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if compile:  # the public call also sets inductor's flag, which only compiled models read
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:  # the same switch without importing the compiler stack (about 1 s of start-up)
        torch._C._set_deterministic_algorithms(True, warn_only=True)


def for_agent(cfg, overrides: dict):
    """A run started by `wandb agent` joins its sweep: the sweep's name (from the sweep
    YAML's command) becomes its group, and the local store files it under that name as the
    local runner does (`runs/<sweep>/`)."""
    from bench.store import check_plain_name
    from bench.track import agent_sweep

    if cfg.sweep is not None:  # it names a folder of the runs directory
        check_plain_name("--sweep", cfg.sweep)
    if agent_sweep() and cfg.sweep:
        cfg.group = cfg.group or cfg.sweep
        if "runs_dir" not in overrides:
            cfg.runs_dir = str(Path(cfg.runs_dir) / cfg.sweep)
    return cfg


def resolve_run_config(overrides: dict):
    """(config, run dir to resume or None)."""
    from bench.artifacts import find_run

    if "resume" not in overrides or overrides["resume"] is None:
        return for_agent(resolve(overrides), overrides), None
    if not str(overrides["resume"]).strip():
        raise UsageError("--resume: give a run directory or id (see runs/)")
    run = find_run(str(overrides["resume"]), overrides.get("runs_dir", "runs"))
    run.lock()  # held until this process ends: two resumes of one run never both train it
    saved = {k: v for k, v in canonical(run.read_config()).items() if k in FIELDS}
    for key, value in canonical(overrides).items():
        if key in RESUME_FREE_KEYS or key not in saved:
            continue
        mine = resolve(dict(saved, **{key: value})).to_dict()[key]
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
    if status == "stopped":
        raise UsageError(f"--resume {run.id}: the run was stopped early by its sweep's early termination "
                         f"({run.read_summary().get('stop_reason')}); it is done: start a new run instead")
    saved.update({k: v for k, v in overrides.items() if k in RESUME_FREE_KEYS and k != "config"})
    return resolve(saved), run


def build(cfg, seconds: dict | None = None):
    """Validate names, load data, build the model. Raises UsageError on any bad input.
    `seconds` receives the wall time of loading the data and of building the model."""
    from registry import build_model, count_params, dataset_entry, model_entry
    from bench.data import load_data

    entry = model_entry(cfg.model)
    dentry = dataset_entry(cfg.dataset)
    task = entry.task_of(cfg.family)
    if cfg.task and cfg.task != task and {cfg.task, task} != {"reconstruct", "denoise"}:
        raise UsageError(f"--task {cfg.task}: model {cfg.model} does a {task} task; valid: {task}")
    if cfg.select_on == "test" and task != "classify":
        raise UsageError(f"--select-on test: only classifiers record test metrics every epoch; "
                         f"{cfg.model} does a {task} task (valid: val)")
    needs = {"classify": "labels", "segment": "masks"}.get(task)
    if needs and dentry.kind != needs:
        raise UsageError(f"model {cfg.model} needs a dataset with {needs}; {cfg.dataset} has {dentry.kind}")
    device = pick_device(cfg.device)
    t = time.perf_counter()
    data = load_data(cfg, task)
    t_data = time.perf_counter()
    cfg.family = entry.with_data(cfg.family, data.shape, data.num_classes)
    check_size(entry, cfg)
    model = build_model(entry, cfg.family)
    dry_forward(model, data, cfg)
    n_params = count_params(model)
    # A budget limits what is learned: frozen backbones (the CNN and autoencoder assignment's ResNet-18 probe) do not count.
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if cfg.max_params is not None and trainable > cfg.max_params:
        raise UsageError(f"{cfg.model} has {trainable:,} trainable parameters ({n_params:,} in all), "
                         f"over --max-params {cfg.max_params:,}")
    cfg.task = model.task
    if seconds is not None:
        seconds.update(data=t_data - t, model=time.perf_counter() - t_data)
    return model, data, device, n_params


def check_size(entry, cfg) -> None:
    """Refuse a model too large for memory before allocating it: it is first built on the
    meta device (no memory, no random numbers drawn) and its parameters counted."""
    import psutil

    from registry import build_model, count_params, on_meta

    try:
        with on_meta():
            n = count_params(build_model(entry, cfg.family))
    except UsageError:
        raise
    except Exception:  # a family that cannot be built on meta (pretrained weights): built for real
        return
    limit = cfg.max_memory if cfg.max_memory is not None else 0.8 * psutil.virtual_memory().available / 2 ** 30
    need = n * 16 / 2 ** 30  # float32 weights, gradients, Adam's two moments
    if need > limit:
        raise UsageError(f"{cfg.model} has {n:,} parameters: about {need:.3g} GiB for weights, gradients and "
                         f"Adam state, over {'--max-memory' if cfg.max_memory is not None else 'the free memory'} "
                         f"({limit:.3g} GiB); choose smaller widths")


def dry_forward(model, data, cfg) -> None:
    """One forward pass on two training images (no gradients, eval mode, no random numbers):
    a configuration its input cannot pass through (a stack that shrinks the image to
    nothing) is refused here, not as a traceback in the middle of training."""
    from bench.tensors import to_float

    x = to_float(data.train.x[:2])
    y = None if data.train.y is None else data.train.y[:2]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(x, y)
    except (RuntimeError, ValueError) as e:
        first = " ".join(str(e).split())[:160]
        raise UsageError(f"{cfg.model} cannot take {cfg.dataset}'s {'x'.join(map(str, data.shape))} images with "
                         f"this configuration: {first}") from None
    finally:
        model.train(was_training)


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
        self._close()
        return {f"time/phase/{k}": round(v, 4) for k, v in self.seconds.items()}


@dataclasses.dataclass
class Job:
    """One run's parts, each built once: what `execute` prepared before the run existed,
    then the W&B tracking and the trainer as the run's phases create them."""
    run: object
    resumed: bool
    cfg: object
    model: torch.nn.Module
    data: object
    device: torch.device
    n_params: int
    resume: dict | None  # the checked last.pt of a resumed run
    record: dict = dataclasses.field(default_factory=dict)  # config.json, and every checkpoint's config
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

    from registry import describe
    from bench.store import RunDir

    # Interpreter start and imports: from process creation to here (what every run pays first).
    before = {"imports": max(0.0, time.time() - psutil.Process().create_time())}
    t = time.perf_counter()
    overrides, actions = parse_args(argv)
    if "list" in actions:
        print(describe())
        return 0
    cfg, resume_run = resolve_run_config(overrides)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    seed_everything(cfg.seed, cfg.compile)
    before["config"] = time.perf_counter() - t
    model, data, device, n_params = build(cfg, before)
    t = time.perf_counter()
    if cfg.eval:
        from bench import tools
        # Unknown tools, and tools this model or data cannot serve, are refused before training.
        cfg.eval = tools.applicable(cfg.eval, model, data.kind)
    if "print_config" in actions:
        from bench.track import resolve_wandb_mode

        shown = cfg.to_dict()
        shown["wandb"] = resolve_wandb_mode(shown.get("wandb"))  # the mode this run would use, not null
        print(json.dumps(shown, indent=2, sort_keys=True))
        return 0
    resume = None
    if resume_run and resume_run.ckpt("last").exists():  # a bad checkpoint is refused here, untouched
        resume = read_resumable(resume_run.ckpt("last"), model, cfg)
    run = resume_run or RunDir.create(cfg.runs_dir, cfg.model, cfg.dataset)
    if started is not None:
        started(run)
    before["model"] += time.perf_counter() - t  # checkpoint check
    job = Job(run, resume_run is not None, cfg, model, data, device, n_params, resume, record=cfg.to_dict())
    with Phases(before) as phases:
        return _supervised(job, phases, log)


def _supervised(job: Job, phases: Phases, log) -> int:
    """Everything that happens to an existing run; whatever stops it, its status is recorded."""
    run, cfg = job.run, job.cfg
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
                f"continue with: python run.py --resume {run.id} --runs-dir {cfg.runs_dir}")
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
        + (f"  (early termination after epoch {job.extra['stopped_epoch']}/{cfg.epochs}: {job.extra['stop_reason']})"
           if status == "stopped" else ""))
    if last:
        print(last, file=sys.stderr)
    if status in ("finished", "stopped"):
        log(next_steps(run, cfg, job.tracking, job.model, job.data.kind))
    return exit_code


def settings_line(record: dict) -> str:
    """The keys that differ from the chosen model's defaults, one short line
    (`--print-config` prints every key)."""
    defaults = default_record(record["model"])
    changed = {k: v for k, v in record.items() if k not in ("model", "task") and defaults.get(k, object()) != v}
    shown = " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in sorted(changed.items()))
    return f"settings {record['model']} ({record.get('task')})" + (f": {shown}" if shown else ": all defaults") \
        + "  (--print-config shows every key)"


def summary_line(extra: dict) -> str:
    """The test numbers of best.pt, one line."""
    line = "summary " + "  ".join(f"{k} {v:.4f}" for k, v in extra.items()
                                  if k.startswith("test") and isinstance(v, float))
    if extra.get("warning/output_collapsed") or extra.get("collapse/active_units") == 0:
        line += "  COLLAPSED (output independent of the input: these numbers describe a constant image)"
    return line


def _train_and_evaluate(job: Job, phases: Phases, log) -> None:
    """The run's phases in order; each one's wall time is recorded as `time/phase/<name>`."""
    from bench.evaluate import run_extra
    from bench.stopping import EarlyStop
    from bench.track import Tracking

    _start(job, log)
    phases.enter("wandb_init")
    job.tracking = Tracking(job.record, job.run)
    job.run.update_summary(wandb_mode=job.tracking.wandb_mode)
    phases.enter("setup")
    step_fn = _setup(job, log)
    job.trainer = Trainer(job.model, job.data, job.cfg, job.run, job.tracking, job.device, log=log,
                          record=job.record, resume=job.resume, step_fn=step_fn,
                          early_stop=EarlyStop.from_env(job.run))
    phases.enter("training")
    state = job.trainer.fit()
    phases.enter("test_evaluation")
    _test_evaluation(job, state, log)
    if job.cfg.eval:
        job.extra.update(run_extra(job.cfg.eval, job.model, job.data, job.cfg, job.run, job.device, job.tracking,
                                   before_each=lambda name: phases.enter(f"eval:{name}")))
    phases.enter("finish")
    job.tracking.log_checkpoints(job.run, job.cfg.wandb_artifacts)


def _start(job: Job, log) -> None:
    """config.json (a new run only), the run's first summary and its opening log lines."""
    run, cfg, model, data = job.run, job.cfg, job.model, job.data
    if not job.resumed:
        run.write_config(job.record)
    log(settings_line(job.record))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log(f"run {run.id}  model {cfg.model} ({job.n_params:,} params, {trainable:,} trainable)  data {cfg.dataset} "
        f"train/val/test {len(data.train)}/{len(data.val)}/{len(data.test)}  device {job.device}")
    run.mark_running()
    run.update_summary(n_train=len(data.train), n_val=len(data.val), n_test=len(data.test),
                       input_shape="x".join(map(str, data.shape)), device_used=str(job.device),
                       params=job.n_params, trainable_params=trainable, model=cfg.model, dataset=cfg.dataset,
                       run_id=run.id, sweep=cfg.sweep, group=cfg.group,
                       sweep_params=os.environ.get("AEBENCH_SWEEP_PARAMS"),
                       sweep_fixed=os.environ.get("AEBENCH_SWEEP_FIXED"), from_best=os.environ.get("AEBENCH_FROM_BEST"),
                       shorthand_keys=",".join(shorthand_keys(cfg.family)))
    if job.resumed:
        # The checkpoint's history is the truth: drop rows of an epoch that never checkpointed.
        history = (job.resume or {}).get("state", {}).get("history", [])
        run.rewrite_metrics(history)
        log(f"resumed {run.id} after epoch {job.epochs_done()}")


def shorthand_keys(family) -> list[str]:
    """The family's keys that only set others (`mlp_dims`): analysis shows them in place of
    the keys they set, reading this list from the record (it imports no family)."""
    from bench.keys import cli_keys

    return [k for k, f in cli_keys(type(family)).items() if f.metadata.get("shorthand")] if family else []


def _setup(job: Job, log):
    """Model and data on the device, mixed precision chosen, the step compiled: returns
    the callable a training step runs."""
    cfg, model, run = job.cfg, job.model, job.run
    model.to(job.device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    job.data = job.data.to(job.device)
    if cfg.amp == "auto":  # chosen once per run: a resumed run keeps its first choice
        from bench.train import choose_amp
        cfg.amp = run.read_summary().get("amp_chosen") if job.resumed else None
        cfg.amp = cfg.amp or choose_amp(model, job.data.train, cfg.batch_size, job.device, cfg.channels_last)
        run.update_summary(amp_chosen=cfg.amp)
        log(f"--amp auto: {cfg.amp}")
    return torch.compile(model) if cfg.compile else model


def _test_evaluation(job: Job, state, log) -> None:
    """Test metrics of best.pt, recorded before any optional tool runs: a tool that fails
    or a stop cannot lose them."""
    from bench.evaluate import image_table, record_results, test_evaluation

    model, run, device = job.model, job.run, job.device
    best_path = run.ckpt("best")
    checkpoint.load_weights(model, checkpoint.load(best_path, map_location=device), best_path)
    results, figs = test_evaluation(model, job.data, job.cfg, run, device, state.history, state.snapshots)
    job.extra = dict({k: v for k, v in state.history[-1].items() if k.startswith(("train/", "val/"))},
                     **results, epochs=state.epoch, best_epoch=state.best_epoch,
                     **{"test/from_checkpoint": f"best.pt (epoch {state.best_epoch})"},
                     train_seconds=state.train_seconds, compile_seconds=state.compile_seconds,
                     images_per_sec=_mean_rate(state.history), params=job.n_params)
    record_results(run, job.tracking, job.extra, figs)
    if model.reconstructs:
        job.tracking.log_table("test_images", *image_table(model, job.data, job.cfg, device))
    if job.cfg.eval:  # the tools may take a while: the test numbers now, and again at the end
        log(summary_line(results))


def next_steps(run, cfg, tracking, model=None, data_kind: str = "") -> str:
    """What to run after a finished run: its report, a table, the latent-space tools this model
    and data can serve (none are suggested that would be refused), and the W&B upload if offline."""
    from bench import tools

    usable = [t for t in ("probe", "embed", "sample")
              if model is None or not tools.missing_needs(t, model, data_kind)]
    # The report of this run alone (a run folder is a store of one), or of its whole sweep
    report = (f"--runs {cfg.runs_dir} --sweep {cfg.sweep} --out reports/{cfg.sweep}" if cfg.sweep
              else f"--runs {run.path} --out reports/{run.id}")
    lines = ["next:",
             f"  python -m analysis.report {report}   # HTML + markdown report",
             f"  python -m analysis.tables --runs {cfg.runs_dir}{' --sweep ' + cfg.sweep if cfg.sweep else ''}"
             f"   # comparison table",
             *([f"  python -m bench.evaluate {run.path} --what {','.join(usable)}   # latent-space tools"]
               if usable else [])]
    sync = tracking.offline_dir() if tracking is not None else None
    if sync:
        lines.append(f"  wandb sync {sync}   # upload this run to W&B")
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
    from bench.config import print_help
    from bench.store import release_run_locks

    try:
        if print_help(argv):  # `aebench-run --help` prints what `python run.py --help` prints
            return 0
        return execute(argv)
    except UsageError as e:
        exit_usage("run.py", e)
    except (KeyboardInterrupt, Interrupted) as e:  # before any run existed: nothing to record
        print("interrupted before the run started", file=sys.stderr)
        return 128 + getattr(e, "signum", signal.SIGINT)
    finally:
        release_run_locks()
