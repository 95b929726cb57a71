"""A W&B sweep YAML, read and checked before any run: its keys, parameters, metric and
method, against W&B's own validation (the `sweeps` package) and against the registry (each
swept model takes each swept key, each model suits each swept dataset)."""
from __future__ import annotations

import difflib
import json
import warnings
from pathlib import Path

import yaml

from bench.config.keys import bare, canonical, scope_of
from bench.config.run_keys import FIELDS, coerce, validate_value
from bench.config.tasks import TASKS
from bench.core.errors import UsageError, yaml_problem
from bench.core.files import check_plain_name
from bench.run import stopping


def load_sweep(path: str) -> dict:
    """Parse and validate a sweep YAML: W&B's schema, then run.py's keys, types and ranges."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sweeps
    try:
        text = Path(path).read_text(encoding="utf-8")
        sweep_config = yaml.safe_load(text)
    except OSError as e:
        raise UsageError(f"cannot read sweep file {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"{path} is not UTF-8 text (byte {e.start})") from None
    except yaml.YAMLError as e:
        raise UsageError(f"{path} is not valid YAML: {yaml_problem(e)}") from None
    except RecursionError:
        raise UsageError(f"{path} is nested too deeply to be a sweep file") from None
    if not isinstance(sweep_config, dict):
        raise UsageError(f"{path}: a sweep config is a mapping with method, metric and parameters")
    params = sweep_config.get("parameters")
    if not isinstance(params, dict) or not params:
        raise UsageError(f"{path}: invalid sweep config: 'parameters' must be a mapping of run.py keys to "
                         f"{{values: [...]}}, {{value: ...}} or {{distribution, min, max}}")
    for name, param in params.items():
        if not isinstance(param, dict):
            raise UsageError(f"{path}: invalid sweep config: parameter {name!r} must be a mapping such as {{values: [...]}}, "
                             f"got {type(param).__name__}")
    stopping.check_rule(sweep_config, path)  # before the schema: an early_terminate type is refused with the valid ones
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        violations = sweeps.schema_violations_from_proposed_config(sweep_config)
    if violations:
        raise UsageError(f"{path}: invalid sweep config: {' '.join(str(violations[0]).split())[:200]}")
    if "name" in sweep_config:
        check_plain_name(f"{path}: sweep name", str(sweep_config["name"]))
    method = sweep_config.get("method")
    metric = sweep_config.get("metric")
    if method == "grid":
        ranged = [name for name, param in params.items() if "values" not in param and "value" not in param]
        if ranged:
            raise UsageError(f"{path}: method grid needs a list of values for {ranged[0]!r} (a grid cannot "
                             f"enumerate a range); use values: [...], or method random/bayes with --count")
    if method == "bayes" and not (isinstance(metric, dict) and metric.get("name")):
        raise UsageError(f"{path}: method bayes needs a metric to optimise, e.g. metric: {{name: val/loss, goal: minimize}}")
    if isinstance(metric, dict) and metric.get("name") and not _is_logged(str(metric["name"])):
        raise UsageError(f"{path}: metric {metric['name']!r} is not a key run.py logs; use val/<term>, "
                         f"test/<metric> or best_value")
    _check_parameters(path, params)
    check_against_registry(path, params)
    if isinstance(metric, dict) and metric.get("name"):
        _check_metric(path, params, str(metric["name"]))
    return sweep_config


def _check_parameters(path: str, params: dict) -> None:
    """Each parameter is a run.py key, and each of its values (and bounds) one it accepts."""
    for name, param in params.items():
        key = canonical_key(name)  # noise_std is noise_level
        if bare(key) not in FIELDS:
            close = difflib.get_close_matches(key, list(FIELDS), n=1)
            raise UsageError(f"{path}: unknown parameter {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                             + "; run.py keys: see `python run.py --help`")
        if "values" in param and not param["values"]:
            raise UsageError(f"{path}: parameter {name!r} has an empty list of values")
        values = list(param.get("values", [param["value"]] if "value" in param else []))
        values += [param[b] for b in ("min", "max") if b in param]
        for v in values:
            try:
                v = coerce(key, v)
                validate_value(key, v)
                check_name(key, v)
            except UsageError as e:
                raise UsageError(f"{path}: parameter {name!r}: {e}") from None
        if "min" in param and "max" in param and not float(param["min"]) < float(param["max"]):
            raise UsageError(f"{path}: parameter {name!r}: min {param['min']} must be below max {param['max']}")


def _values_of(params: dict):
    """key -> the list of values a sweep's parameters (canonical names) give it: its `values`,
    its `value`, or the key's default when the sweep does not set it."""
    def values(key):
        param = params.get(key, {"value": FIELDS[key].default})
        return list(param.get("values", [param["value"]] if "value" in param else []))
    return values


def check_against_registry(path: str, params: dict) -> None:
    """Every run the sweep can make is one run.py accepts: each swept model takes each swept
    model key, its task suits each swept dataset, each eval tool exists, and a parameter with
    a range is never drawn from a normal distribution (whose support has no bounds)."""
    import registry
    from bench import tools
    from bench.config.keys import cli_keys
    from bench.config.run_keys import FIELDS, MODEL_KEYS

    params = {canonical_key(k): param for k, param in params.items()}
    values = _values_of(params)
    _check_scoped(path, params, [str(m) for m in values("model")])
    for m in values("model"):
        entry = registry.model_entry(str(m))
        taken = set(cli_keys(entry.config_cls))
        for key in [k for k in params if k in MODEL_KEYS and k not in taken]:
            raise UsageError(f"{path}: parameter {key!r}: model {m} does not take it; its keys: "
                             f"{', '.join(sorted(taken)) or 'none'}")
        needs = TASKS[entry.task].targets
        for d in values("dataset"):
            if needs and registry.dataset_entry(str(d)).kind != needs:
                raise UsageError(f"{path}: model {m} needs a dataset with {needs}; {d} has "
                                 f"{registry.dataset_entry(str(d)).kind}")
    for chosen in values("eval") if "eval" in params else []:
        tools.expand([chosen] if isinstance(chosen, str) else list(chosen or []))
    for key, param in params.items():
        meta = FIELDS[key].metadata if key in FIELDS else {}
        bounded = meta.get("lo") is not None or meta.get("hi") is not None
        if param.get("distribution") in ("normal", "q_normal") and bounded:
            raise UsageError(f"{path}: parameter {key!r}: a normal distribution draws values outside its range; "
                             f"use uniform or log_uniform_values between bounds")


def _check_scoped(path: str, params: dict, models: list[str]) -> None:
    """A key given for one model (`dae.noise_level`) names a model the sweep runs, and each of
    its values is one that model takes."""
    from bench.config.spec import for_model

    for key, param in params.items():
        owner = scope_of(key)[0]
        if owner is None:
            continue
        if owner not in models:
            raise UsageError(f"{path}: parameter {key!r}: model {owner} is not among this sweep's models "
                             f"({', '.join(models)})")
        for v in list(param.get("values", [param["value"]] if "value" in param else [])):
            try:
                for_model({key: v}, owner)
            except UsageError as e:
                raise UsageError(f"{path}: parameter {key!r}: {e}") from None


def _check_metric(path: str, params: dict, metric: str) -> None:
    """The metric is one every swept model logs on every swept dataset: its training terms
    as train/ and val/, its task's test metrics as test/, an evaluation tool's numbers under
    the tool's name, or the run's best_value, best_epoch and time/ keys."""
    import registry
    from bench import tools

    split = metric.partition("/")[0]
    if metric in ("best_value", "best_epoch") or split in ("time", "test_noisy", "warning") or split in tools.names():
        return
    values = _values_of({canonical_key(k): param for k, param in params.items()})
    for m in values("model"):
        entry = registry.model_entry(str(m))
        for d in values("dataset"):
            dentry = registry.dataset_entry(str(d))
            terms = registry.forward_terms(entry, dentry.shape, dentry.num_classes)
            if terms is None and TASKS[entry.task].targets == "labels":  # a pretrained classifier: no dry pass
                terms = TASKS[entry.task].test_keys
            if terms is None:
                continue
            logged = {f"{s}/{t}" for s in ("train", "val", "test") for t in terms - {"beta_now"}}
            logged |= {f"test/{t}" for t in TASKS[entry.task].test_keys}
            if metric not in logged:
                near = difflib.get_close_matches(metric, sorted(logged), n=1)
                raise UsageError(f"{path}: metric {metric!r} is never logged by model {m} on {d}"
                                 f"{f' (did you mean {near[0]!r}?)' if near else ''}; it logs "
                                 f"{', '.join(sorted(k for k in logged if not k.startswith('train/')))}, "
                                 f"best_value and the eval tools' numbers")


def _is_logged(metric: str) -> bool:
    """Summary keys a run records: split/term (val/loss, test/psnr, probe/linear_acc, ...) or best_value."""
    return metric in ("best_value", "best_epoch") or ("/" in metric and all(metric.split("/")))


def check_name(key: str, value) -> None:
    """Model and dataset names in a sweep are checked against the registry, as run.py would."""
    if key in ("model", "dataset"):
        from registry import dataset_entry, model_entry
        (model_entry if key == "model" else dataset_entry)(str(value))


def sweep_name(sweep_config: dict, path: str) -> str:
    return check_plain_name("sweep name", str(sweep_config.get("name") or Path(path).stem))


def fmt_value(v) -> str:
    """How a W&B agent writes a value on the command line."""
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def varied(sweep_config: dict) -> list[str]:
    """The sweep's parameters that take more than one value (what tells its runs apart)."""
    out = []
    for k, param in (sweep_config.get("parameters") or {}).items():
        if isinstance(param, dict) and ("distribution" in param or len(param.get("values") or []) > 1):
            out.append(k)
    return sorted(out)


def config_key(params: dict) -> str:
    return json.dumps({k: params[k] for k in sorted(params)}, sort_keys=True)


def canonical_key(name: str) -> str:
    """A sweep parameter's key as run.py names it today (`noise-std` -> `noise_level`)."""
    return next(iter(canonical({name.replace("-", "_"): None})))
