"""Everything about a run that can be refused, checked before its run directory exists:
the spec (names, ranges, shapes, task), a resumed run's match with its record, the data, the
model's size and a dry forward pass. Bad input therefore never leaves a run behind.
"""
from __future__ import annotations

import time

import torch

from bench.config.keys import canonical
from bench.config.spec import RunSpec, for_model, from_record, resolve
from bench.core.errors import UsageError


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


# Keys that may differ between a run and its resumption: where it runs, not what it computes.
RESUME_FREE_KEYS = {"device", "wandb", "runs_dir", "data_root", "num_threads", "resume", "config",
                    "eval", "embed_points", "embed_views", "compile", "max_memory", "wandb_system", "wandb_artifacts",
                    "verbose"}


def resolve_run(overrides: dict) -> tuple[RunSpec, object]:
    """(the run's spec, the run folder to resume or None)."""
    from bench.records.artifacts import find_run
    from bench.records.store import effective_status

    if "resume" not in overrides or overrides["resume"] is None:
        return resolve(overrides), None
    if not str(overrides["resume"]).strip():
        raise UsageError("--resume: give a run directory or id (see runs/)")
    run = find_run(str(overrides["resume"]), overrides.get("runs_dir", "runs"))
    run.lock()  # held until this process ends: two resumes of one run never both train it
    saved = from_record(run.read_config())
    # One resolution: the record, with the keys given again and those that may change; each key
    # given again must resolve to the recorded value.
    given = {k: v for k, v in for_model(canonical(overrides), saved.get("model", "")).items()
             if k not in RESUME_FREE_KEYS and k in saved}
    may_change = {k: v for k, v in overrides.items() if k in RESUME_FREE_KEYS and k != "config"}
    spec = resolve(dict(saved, **given, **may_change))
    mine = spec.to_dict()
    for key in given:
        if mine[key] != saved[key]:
            free = ", ".join(sorted(RESUME_FREE_KEYS - {"resume", "config"}))
            raise UsageError(f"--resume {run.id}: --{key.replace('_', '-')} {mine[key]!r} differs from the run's "
                             f"{saved[key]!r}; resume with the same config (only {free} may change)")
    summary = run.read_summary()
    status = effective_status(summary, run.path)
    if status == "running":
        raise UsageError(f"--resume {run.id}: the run is still running (pid {summary.get('pid')}); stop it first")
    if status == "finished":
        raise UsageError(f"--resume {run.id}: the run already finished; start a new run instead")
    if status == "stopped":
        raise UsageError(f"--resume {run.id}: the run was stopped early by its sweep's early termination "
                         f"({summary.get('stop_reason')}); it is done: start a new run instead")
    return spec, run


def build(spec: RunSpec, seconds: dict | None = None):
    """Load the data and build the model of `spec`, each once. Raises UsageError on bad input.
    `seconds` receives the wall time of loading the data and of building the model."""
    from bench.data import load_data
    from registry import build_model, count_params

    device = pick_device(spec.device)
    t = time.perf_counter()
    data = load_data(spec)
    t_data = time.perf_counter()
    check_size(spec)
    model = build_model(spec.model_entry, spec.family, spec.task)
    dry_forward(model, data, spec)
    n_params = count_params(model)
    # A budget limits what is learned: frozen backbones (the CNN and autoencoder assignment's ResNet-18 probe) do not count.
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if spec.max_params is not None and trainable > spec.max_params:
        raise UsageError(f"{spec.model} has {trainable:,} trainable parameters ({n_params:,} in all), "
                         f"over --max-params {spec.max_params:,}")
    if seconds is not None:
        seconds.update(data=t_data - t, model=time.perf_counter() - t_data)
    return model, data, device, n_params


def check_size(spec) -> None:
    """Refuse a model too large for memory before allocating it: it is first built on the
    meta device (no memory, no random numbers drawn) and its parameters counted.

    This second build is deliberate: counting needs the built modules, and the real build
    allocates and initialises every weight, so a model too large for memory would take the
    machine down before it could be refused. On meta it costs milliseconds and draws nothing
    from the random stream, so the real build's weights are those of a run without the check."""
    import psutil

    from registry import build_model, count_params, on_meta

    try:
        with on_meta():
            n = count_params(build_model(spec.model_entry, spec.family, spec.task))
    except UsageError:
        raise
    except Exception:  # a family that cannot be built on meta (pretrained weights): built for real
        return
    limit = spec.max_memory if spec.max_memory is not None else 0.8 * psutil.virtual_memory().available / 2 ** 30
    need = n * 16 / 2 ** 30  # float32 weights, gradients, Adam's two moments
    if need > limit:
        raise UsageError(f"{spec.model} has {n:,} parameters: about {need:.3g} GiB for weights, gradients and "
                         f"Adam state, over {'--max-memory' if spec.max_memory is not None else 'the free memory'} "
                         f"({limit:.3g} GiB); choose smaller widths")


def dry_forward(model, data, spec) -> None:
    """One forward pass on two training images (no gradients, eval mode, no random numbers):
    a configuration its input cannot pass through (a stack that shrinks the image to
    nothing) is refused here, not as a traceback in the middle of training."""
    from bench.core.tensors import to_float

    x = to_float(data.train.x[:2])
    y = None if data.train.y is None else data.train.y[:2]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(x, y)
    except (RuntimeError, ValueError) as e:
        first = " ".join(str(e).split())[:160]
        raise UsageError(f"{spec.model} cannot take {spec.dataset}'s {'x'.join(map(str, data.shape))} images with "
                         f"this configuration: {first}") from None
    finally:
        model.train(was_training)
