"""The standard benchmark: every registered autoencoder family, the same budget, 3 seeds.

    python -m bench.suite standard --scale tiny|cpu|full [--workers auto] [--data-root DIR]
    python -m analysis.leaderboard standard --scale cpu        # the ranked table

A suite file (`sweeps/suite/<name>.yaml`) names its datasets with one latent size each, the
families (`all`: every registered autoencoder, so a new file under `bench/models/` joins
without editing the suite), the seeds, the evaluation tools and the budget of each scale
(epochs, batch size, learning rate, image counts), stated once and the same for every
family, `family_keys` given to every family that takes them (BatchNorm), and the shared backbone:
one conv encoder and decoder per input size for every family built on a conv stack, so that
the families differ in their objective and latent head only (`--backbone own`: their own). Each dataset
runs as a grid (family x seed) through the local sweep runner, so a suite resumes like a
sweep, never runs a configuration twice, and its runs share one folder and one W&B group,
`suite_<name>_<scale>`. A dataset whose files are not under `--data-root` is left out in one
line that says where to put them, and the suite goes on with the others. A family that has no latent size to set (`pool_ae`: its code size
is fixed by its architecture) runs at its own size.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from bench.core.errors import UsageError, exit_usage

ROOT = Path(__file__).resolve().parents[2]
SUITES = ROOT / "sweeps" / "suite"
SCALES = ("tiny", "cpu", "full")
BUDGET = ("epochs", "batch_size", "lr", "limit_train", "limit_test", "nll_k")  # nll_k: the likelihood tool's cost


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITES.glob("*.yaml"))


def load_suite(name: str) -> dict:
    """The suite file `sweeps/suite/<name>.yaml`, checked: datasets and families registered,
    every scale's budget made of run keys in range."""
    from bench.config.run_keys import coerce, validate_value
    from bench.core.files import check_plain_name

    path = SUITES / f"{check_plain_name('suite', name)}.yaml"
    if not path.is_file():
        raise UsageError(f"unknown suite {name!r}; valid: {', '.join(suite_names()) or 'none'}")
    suite = yaml.safe_load(path.read_text())
    if not isinstance(suite, dict) or not isinstance(suite.get("datasets"), dict) or \
            not isinstance(suite.get("scales"), dict):
        raise UsageError(f"{path}: a suite names datasets (with latent_dim) and scales (with the budget)")
    import registry
    for dataset in suite["datasets"]:
        registry.dataset_entry(str(dataset))
    check_backbone(path, suite.get("backbone"))
    own = {f"{d}: scale {sc}": b for d, e in suite["datasets"].items() for sc, b in ((e or {}).get("scales") or {}).items()}
    for scale, budget in list(suite["scales"].items()) + list(own.items()):
        for key, value in (budget or {}).items():
            if key not in BUDGET:
                raise UsageError(f"{path}: scale {scale}: {key!r} is not a budget key; valid: {', '.join(BUDGET)}")
            validate_value(key, coerce(key, value))
    return suite


def check_backbone(path, backbone) -> None:
    """`backbone:` is optional; where given, `channels` maps input sizes to conv widths (each a
    run key value in range) and `own` names registered families."""
    import registry
    from bench.config.run_keys import coerce, validate_value

    if backbone is None:
        return
    widths = backbone.get("channels") if isinstance(backbone, dict) else None
    if not isinstance(widths, dict) or not widths:
        raise UsageError(f"{path}: backbone: give channels per input size, e.g. channels: {{28: [32, 64, 128]}}")
    for size, value in widths.items():
        if not isinstance(size, int):
            raise UsageError(f"{path}: backbone: channels: {size!r} is not an input size in pixels")
        validate_value("channels", coerce("channels", value))
    for name in backbone.get("own") or []:
        registry.model_entry(str(name))


def shared_channels(suite: dict, size: int) -> list[int]:
    """The shared backbone's conv widths for square inputs of `size` pixels."""
    widths = (suite.get("backbone") or {}).get("channels") or {}
    if size not in widths:
        raise UsageError(f"suite {suite['name']}: the shared backbone has no conv widths for {size}x{size} inputs "
                         f"(it has {', '.join(f'{s}x{s}' for s in widths) or 'none'}); add them under backbone: "
                         f"channels in sweeps/suite/{suite['name']}.yaml, or run with --backbone own")
    return [int(c) for c in widths[size]]


def backbone_choice(suite: dict, dataset: str, models: list[str], overrides: dict):
    """`--backbone shared`: the conv widths for the dataset's input size, given to every family
    that builds on a conv stack (its config takes `channels`) and is not an architecture in its
    own right (`own`). None when the suite has no backbone."""
    import registry
    from bench.sweep.best import Choice

    if not suite.get("backbone"):
        return None
    size = int(overrides.get("image_size") or registry.dataset_entry(dataset).shape[-1])
    own = set((suite["backbone"].get("own") or []))
    takers = [m for m in models if m not in own and "channels" in registry.model_entry(m).config_keys()]
    return Choice({"channels": shared_channels(suite, size)}, "", frozenset(takers)) if takers else None


def families(suite: dict) -> list[str]:
    """The suite's families: `all` is every registered model whose task the suite compares
    (`in_suite`: the autoencoders' reconstruct and denoise)."""
    import registry
    from bench.config.tasks import TASKS

    registry.discover()
    chosen = suite.get("families", "all")
    if chosen == "all":
        return sorted(n for n, e in registry.MODELS.items() if TASKS[e.task].in_suite and not e.hidden)
    return [registry.model_entry(str(m)).name for m in chosen]


def sweep_name(suite: dict, scale: str) -> str:
    return f"suite_{suite['name']}_{scale}"


def sweep_for(suite: dict, scale: str, dataset: str, models: list[str]) -> dict:
    """One dataset of the suite as a W&B grid sweep: family x seed."""
    return {"name": sweep_name(suite, scale), "method": "grid", "program": "run.py",
            "metric": suite.get("metric") or {"name": "val/mse", "goal": "minimize"},
            "parameters": {"model": {"values": models}, "dataset": {"value": dataset},
                           "seed": {"values": list(suite.get("seeds") or [0, 1, 2])}}}


def budget_flags(suite: dict, scale: str, dataset: str | None = None) -> dict:
    """The run keys every run of this scale gets: the budget (with the dataset's own changes to
    it, `datasets: {celeba: {scales: {full: {epochs: 50}}}}`) and the denoising noise level."""
    budget = dict(suite["scales"][scale] or {})
    if dataset is not None:
        budget.update(dataset_budget(suite, dataset, scale))
    flags = {k: v for k, v in budget.items() if v is not None}
    if suite.get("denoise_sigma") is not None:
        flags["eval_sigmas"] = str(suite["denoise_sigma"])
    return flags


def dataset_budget(suite: dict, dataset: str, scale: str) -> dict:
    """A dataset's own changes to a scale's budget (`datasets: {celeba: {scales: {full: ...}}}`)."""
    return ((suite["datasets"].get(dataset) or {}).get("scales") or {}).get(scale) or {}


def budget_text(suite: dict, scale: str, datasets: list[str] | None = None) -> str:
    """The scale's budget in words, and each dataset's own changes to it."""
    words = lambda b: ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in b.items())  # noqa: E731
    own = [(d, dataset_budget(suite, d, scale)) for d in datasets or suite["datasets"]]
    return words(suite["scales"][scale] or {}) + "".join(f"; {d}: {words(b)}" for d, b in own if b)


def tool_choices(suite: dict, dataset: str, models: list[str]) -> list:
    """The suite's tools that apply to each family (`sample` needs a decoder of z, which
    `pool_ae` lacks; `nll` a posterior and a decoder likelihood): one `--eval` list per group of
    families, so no run is refused. A dataset may name its own tools instead of the suite's
    (`datasets: {D: {eval: [probe, nll]}}`) and keys of its own for the families (`family_keys`),
    which the check builds with."""
    import registry
    from bench import tools
    from bench.sweep.best import Choice

    dentry = registry.dataset_entry(dataset)
    own_eval = dataset_entry_of(suite, dataset).get("eval")
    wanted = list(suite.get("eval") or []) if own_eval is None else list(own_eval)
    own_keys = dict(dataset_entry_of(suite, dataset).get("family_keys") or {})
    groups: dict[str, list[str]] = {}
    for m in models:
        entry = registry.model_entry(m)
        try:
            keys = {k: v for k, v in own_keys.items() if k in entry.config_keys()}
            with registry.on_meta():
                model = registry.build_model(entry, entry.config(keys, dentry.shape, dentry.num_classes))
            chosen = [t for t in wanted if not tools.missing_needs(t, model, dentry.kind)
                      and not tools.refusal(t, model, None, None)]
        except UsageError:
            chosen = list(wanted)
        groups.setdefault(",".join(chosen), []).append(m)
    return [Choice({"eval": names}, "", frozenset(ms)) for names, ms in groups.items() if names]


def dataset_entry_of(suite: dict, dataset: str) -> dict:
    """What the suite file says of one dataset (its latent size, budget changes, tools, keys)."""
    return suite["datasets"].get(dataset) or {}


def family_keys(suite: dict, models: list[str], dataset: str | None = None):
    """Keys the suite gives every family that takes them (`batchnorm: true`), with the dataset's
    own (`datasets: {binarized_mnist: {family_keys: {recon_type: bce}}}`), checked as run.py would."""
    from bench.config.run_keys import FIELDS, coerce, validate_value
    from bench.sweep.best import Choice

    keys = dict(suite.get("family_keys") or {})
    if dataset is not None:
        keys.update(dataset_entry_of(suite, dataset).get("family_keys") or {})
    for k, v in keys.items():
        if k not in FIELDS:
            raise UsageError(f"suite {suite['name']}: family_keys: {k!r} is not a run key")
        validate_value(k, coerce(k, v))
    return Choice(keys, "", frozenset(models)) if keys else None


def latent_choice(suite: dict, dataset: str, models: list[str]):
    """The dataset's latent size, for the families that take one."""
    import registry
    from bench.sweep.best import Choice

    size = (suite["datasets"][dataset] or {}).get("latent_dim")
    if size is None:
        return None
    takers = [m for m in models if "latent_dim" in registry.model_entry(m).config_keys()]
    return Choice({"latent_dim": int(size)}, "", frozenset(takers))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.suite", description=__doc__.splitlines()[0])
    p.add_argument("suite", help="a suite under sweeps/suite/ (e.g. standard)")
    p.add_argument("--scale", choices=SCALES, default="tiny",
                   help="the budget: tiny (seconds, the test suite), cpu (about 15 minutes on 2 cores), full (GPU)")
    p.add_argument("--datasets", default=None, help="only these of the suite's datasets (comma list)")
    p.add_argument("--families", default=None, help="only these families (comma list; default: the suite's)")
    p.add_argument("--workers", default="1", help="runs at once, or auto (as bench.sweep)")
    p.add_argument("--spawn", choices=["fork", "exec"], default="fork")
    p.add_argument("--backbone", choices=["shared", "own"], default="shared",
                   help="shared (default): one conv encoder/decoder per input size for every family built on one "
                        "(the suite file's backbone); own: each family's own architecture")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--dry-run", action="store_true", help="print every run's command line, then exit")
    from bench.sweep import slurm

    slurm.add_arguments(p, agent=False)  # --slurm N: the suite as one job array (each task runs the suite)
    p.error = lambda msg: exit_usage(p.prog, UsageError(msg))
    args, rest = p.parse_known_args(argv)
    try:
        return _run_suite(args, rest)
    except UsageError as e:
        exit_usage(p.prog, e)
    except OSError as e:
        exit_usage(p.prog, UsageError(f"cannot write {e.filename or args.runs_dir}: {e.strerror or e}"))


def _subset(given: str | None, allowed: list[str], message: str) -> list[str]:
    """The comma list `given` (all of `allowed` when None), each name one of `allowed`."""
    if not given:
        return allowed
    wanted = [x.strip() for x in given.split(",") if x.strip()]
    unknown = [x for x in wanted if x not in allowed]
    if unknown:
        raise UsageError(message.format(unknown[0]) + f"; valid: {', '.join(allowed)}")
    return wanted


def _run_suite(args, rest) -> int:
    from bench.sweep.plan import parse_workers

    suite, overrides, models, datasets = _plan(args, rest)
    if args.slurm is not None:
        from bench.sweep import slurm
        slurm.check_request(args, local=f"python -m bench.suite {args.suite} --scale {args.scale} --workers auto")
    args.workers, args.count = parse_workers(args.workers), None
    print(f"suite {args.suite} at scale {args.scale}: {len(models)} families x {len(datasets)} datasets x "
          f"{len(suite.get('seeds') or [0, 1, 2])} seeds; budget: {budget_text(suite, args.scale, datasets)}",
          flush=True)
    readable = _readable(args, suite, datasets, overrides)  # --dry-run plans what the run will do
    if args.slurm is not None:
        return _on_slurm(args, rest, readable, _sweep(args, suite, readable[0], models, overrides))
    from bench.sweep.plan import plan

    sweeps = [_sweep(args, suite, dataset, models, overrides) for dataset in readable]
    sizes = [len(plan(sweep.sweep_config, None)) for sweep in sweeps]
    code = 0
    for i, sweep in enumerate(sweeps):
        sweep.overall = (sum(sizes[:i]), sum(sizes))  # its counter and time left cover the whole suite
        code = max(code, sweep.dry_run() if args.dry_run else sweep.run())
        if code >= 128:  # stopped by a signal: the sweep said that the same command resumes
            return code
    if args.dry_run:
        print(f"suite {args.suite}: {sum(sizes)} runs in all over {', '.join(readable)}")
    else:
        print(f"leaderboard: python -m analysis.leaderboard {args.suite} --scale {args.scale} --runs {args.runs_dir}")
    return code


def _plan(args, rest):
    """The suite file, the user's run.py flags for every run (each dataset's budget is added per sweep), and the
    families and datasets chosen; flags the suite fixes are refused."""
    from bench.config.cli import parse_args

    suite = load_suite(args.suite)
    overrides, _ = parse_args(rest, prog="bench.suite")  # --data-root, --wandb, --device, ...
    fixed_budget = [k for k in overrides if k in BUDGET + ("model", "dataset", "seed", "latent_dim", "eval")]
    if fixed_budget:
        raise UsageError(f"--{fixed_budget[0].replace('_', '-')}: the suite fixes it (the same budget for every "
                         f"family); choose --scale {'|'.join(SCALES)} or edit sweeps/suite/{args.suite}.yaml")
    if "channels" in overrides and args.backbone == "shared" and suite.get("backbone"):
        raise UsageError(f"--channels: the shared backbone sets every family's conv widths (sweeps/suite/"
                         f"{args.suite}.yaml, backbone: channels); add --backbone own to give your own")
    if args.scale not in suite["scales"]:
        raise UsageError(f"suite {args.suite} has no scale {args.scale}; its scales: {', '.join(suite['scales'])}")
    models = _subset(args.families, families(suite), f"--families: {{!r}} is not a family of suite {args.suite}")
    datasets = _subset(args.datasets, list(suite["datasets"]), f"--datasets: {{!r}} is not in suite {args.suite}")
    return suite, overrides, models, datasets


def _readable(args, suite: dict, datasets: list[str], overrides: dict) -> list[str]:
    """The datasets whose files can be read here; each other one left out in one line."""
    from bench.sweep.plan import unavailable

    readable = []
    for dataset in datasets:
        missing = unavailable(dataset, str(overrides.get("data_root", "./data")))
        if missing:  # one line for this dataset; the others go on
            print(f"suite {args.suite}: {dataset} left out: {missing}", flush=True)
        else:
            readable.append(dataset)
    if not readable:
        raise UsageError(f"none of the datasets of suite {args.suite} ({', '.join(datasets)}) can be read under "
                         f"--data-root {overrides.get('data_root', './data')}")
    return readable


def _sweep(args, suite: dict, dataset: str, models: list[str], overrides: dict):
    """One dataset of the suite as a local sweep runner: the scale's budget for this dataset given
    to every run, and the values carried to some families."""
    from bench.sweep.agent import Sweep
    from bench.sweep.file import check_against_registry, fmt_value

    overrides = dict(overrides, **budget_flags(suite, args.scale, dataset))
    fixed = [f"--{k}={fmt_value(v)}" for k, v in overrides.items()]

    sweep_config = sweep_for(suite, args.scale, dataset, models)
    check_against_registry(f"suite {args.suite}", sweep_config["parameters"])
    carried = [latent_choice(suite, dataset, models), family_keys(suite, models, dataset)] + \
        tool_choices(suite, dataset, models)
    if args.backbone == "shared":
        carried.append(backbone_choice(suite, dataset, models, overrides))
    return Sweep(f"{args.suite}.yaml", sweep_config, args, fixed, None, overrides, carried)


def _on_slurm(args, rest: list[str], datasets: list[str], sweep) -> int:
    """The suite as one Slurm job array: each task runs this suite, without --slurm, on the same
    runs folder, whose locks give every run to exactly one task (all datasets share one sweep
    folder); a cancelled or timed-out array submitted again resumes what it left."""
    from bench.sweep import slurm

    command = [sys.executable, "-m", "bench.suite", args.suite, "--scale", args.scale, "--datasets",
               ",".join(datasets), "--backbone", args.backbone, "--workers", str(args.workers), "--spawn",
               args.spawn, "--runs-dir", str(Path(args.runs_dir).resolve())]
    command += (["--families", args.families] if args.families else []) + rest
    board = f"python -m analysis.leaderboard {args.suite} --scale {args.scale} --runs {args.runs_dir}"
    return slurm.submit(args, sweep, rest, command, table=board)


if __name__ == "__main__":
    sys.exit(main())
