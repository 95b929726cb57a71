"""Evaluate a finished run again, with the evaluation tools or another checkpoint:

    python -m bench.evaluate RUN --what probe,embed,denoise,interp,arith,sample,occlusion,collapse,nll

The command line only; the evaluation itself is `bench.run.evaluate`.
"""
from __future__ import annotations

import argparse
import sys

import torch

from bench.core.errors import UsageError, exit_usage
from bench.run.evaluate import run_extra


def main(argv=None) -> int:
    from bench import tools

    p = argparse.ArgumentParser(prog="python -m bench.evaluate", description="Evaluate a finished run again, with the evaluation tools or another checkpoint.")
    p.add_argument("run", help="run directory or id")
    p.add_argument("--what", default="all", help=f"comma list of {','.join(tools.names())} or all")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--data-root", default=None, help="override the run's data root")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--wandb", default="disabled", choices=["online", "offline", "disabled"])
    p.add_argument("--embed-points", type=int, default=None, help="test images `embed` uses (default: the run's)")
    p.add_argument("--nll-k", type=int, default=None, help="importance samples per image of `nll` (default: the run's)")
    p.add_argument("--nll-grey", action="store_true", help="let `nll` score a Bernoulli decoder on grey-level images")
    p.add_argument("--checkpoint", default="best", help="which weights: best (default), last, or epoch-N, kept by "
                   "the run's --keep-epochs; numbers of another than best are recorded as KEY@CHECKPOINT")
    p.error = lambda msg: exit_usage(p.prog, UsageError(msg))  # one line, exit 2
    args = p.parse_args(argv)
    try:
        return _standalone(args)
    except UsageError as e:
        exit_usage(p.prog, e)
    except OSError as e:  # a full or read-only disk: one line, and the run's record stays as it was
        exit_usage(p.prog, UsageError(f"cannot write {e.filename or 'the run folder'}: {e.strerror or e}"))


def _standalone(args) -> int:
    from bench import tools
    from bench.records.artifacts import find_run

    tools.expand([w for w in args.what.split(",") if w])  # unknown names first, before any file is read
    run = find_run(args.run, args.runs_dir)
    run.lock()  # a run that trains, resumes or is evaluated elsewhere is refused: its best.pt may change
    try:
        return _evaluate_locked(args, run)
    finally:
        run.unlock()


def _evaluate_locked(args, run) -> int:
    from bench import tools
    from bench.config.spec import from_record, resolve
    from bench.data import load_data
    from bench.records.rebuild import load_run_model
    from bench.records.track import Tracking

    kept = sorted(p.stem for p in run.path.glob("epoch-*.pt"))
    if args.checkpoint not in ("best", "last") and args.checkpoint not in kept:
        raise UsageError(f"--checkpoint {args.checkpoint}: run {run.id} has no such checkpoint; valid: "
                         f"{', '.join(['best', 'last'] + kept)}")
    model, saved = load_run_model(str(run.path), args.runs_dir, which=args.checkpoint)
    overrides = from_record(saved)
    if args.data_root:
        overrides["data_root"] = args.data_root
    for key in ("embed_points", "nll_k"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if args.nll_grey:
        overrides["nll_grey"] = True
    spec = resolve(overrides)
    device = torch.device("cuda" if args.device in ("cuda", "auto") and torch.cuda.is_available() else "cpu")
    data = load_data(spec, model.task).to(device)
    names = tools.applicable([w for w in args.what.split(",") if w], model, data.kind, data, spec)
    model.to(device)
    tracking = Tracking(dict(saved, wandb=args.wandb), run)
    try:
        summary = run_extra(names, model, data, spec, run, device, tracking,
                            suffix=None if args.checkpoint == "best" else args.checkpoint)
    finally:
        tracking.finish(0)
    failed = sorted(k for k, v in summary.items() if k.endswith("/failed") and v)
    print(f"wrote {len(summary)} numbers to {run.path / 'summary.json'}"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
