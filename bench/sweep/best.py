"""The best configuration of a finished sweep, to carry into another one.

    python -m bench.sweep sweeps/celeba_models.yaml --from-best celeba_sparse_lambda --within 10

reads the runs of `runs/celeba_sparse_lambda/`, averages that sweep's own metric over seeds
for each configuration, and picks the best; with `--within PCT`, the configuration with the
largest value of the swept setting among those within PCT% of the best (the strongest
regularisation that costs at most PCT% of the metric: the CelebA assignment's "sweet spot
where the L1 norm decreases visibly, but the MSE doesn't skyrocket"). The chosen values go
to every run of the new sweep whose model takes them, and each run records why.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.core.errors import UsageError
from bench.core.files import check_plain_name
from bench.sweep.ledger import sweep_records


@dataclass(frozen=True)
class Choice:
    values: dict          # swept key -> chosen value (seed excluded)
    why: str              # which sweep, which metric, the numbers
    models: frozenset     # the models the sweep trained: only their runs take the values

    @property
    def reason(self) -> str:
        """One sentence, recorded by each run that takes the values."""
        return f"{self.why} (for {', '.join(sorted(self.models))})" if self.why else ""

    def into(self, sweep_config: dict) -> "Choice":
        """The choice as the new sweep file `sweep_config` takes it. A chosen key that file sets itself is
        asked for by the file: it is replaced there, for every model of the new sweep (task c of
        the Fashion-MNIST assignment turns task b's best `mlp_dims` into a VAE and a plain AE).
        A key the file does not set goes only to the models the chosen sweep trained (an AE takes
        `l1_lambda` too, but it is not the lambda sweep's sparse AE)."""
        from bench.sweep.file import canonical_key
        params = sweep_config["parameters"]
        named = {canonical_key(k): k for k in params}
        asked = [k for k in self.values if k in named]
        if not asked:
            return self
        for k in asked:
            params[named[k]] = {"value": self.values[k]}
        param = params.get(named.get("model", "model")) or {}
        new = param.get("values") or ([param["value"]] if "value" in param else [])
        rest = {k: v for k, v in self.values.items() if k not in asked}  # the rest still goes to the chosen sweep's models
        return Choice(rest, self.why, self.models | frozenset(map(str, new)))


def _finished(folder: Path, metric: str, models: set) -> dict[str, list[float]]:
    """Configuration (its swept values but the seed, as JSON) -> the metric of each finished
    run; `models` collects the models they trained."""
    out: dict[str, list[float]] = {}
    for r in sweep_records(folder, metric):
        if r.status != "finished" or r.value is None:
            continue
        params = {k: v for k, v in json.loads(r.key).items() if k != "seed"}
        models.add(r.model)
        out.setdefault(json.dumps(params, sort_keys=True), []).append(r.value)
    return out


def from_best(runs_dir: str, name: str, within: float = 0.0) -> Choice:
    """The chosen configuration of the finished sweep `name` under `runs_dir` (see the module)."""
    folder = Path(runs_dir) / check_plain_name("--from-best", name)
    try:
        sweep_config = yaml.safe_load((folder / "sweep.yaml").read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        raise UsageError(f"--from-best {name}: no sweep {name} in {runs_dir}/ (run `python -m bench.sweep "
                         f"sweeps/{name}.yaml` first)") from None
    metric = (sweep_config.get("metric") or {}) if isinstance(sweep_config, dict) else {}
    if not metric.get("name"):
        raise UsageError(f"--from-best {name}: that sweep names no metric to choose by")
    models: set = set()
    runs = _finished(folder, metric["name"], models)
    if not runs:
        raise UsageError(f"--from-best {name}: no finished run of it records {metric['name']}; finish it first")
    sign = -1.0 if metric.get("goal") == "maximize" else 1.0
    means = {k: sum(v) / len(v) for k, v in runs.items()}
    best = min(means, key=lambda k: sign * means[k])
    chosen, why = best, f"the best mean {metric['name']}"
    if within > 0:
        near = [k for k in means if sign * (means[k] - means[best]) <= within / 100 * abs(means[best])]
        varied = [k for k, v in json.loads(best).items()
                  if isinstance(v, (int, float)) and len({json.loads(c)[k] for c in means}) > 1]
        if varied:
            chosen = max(near, key=lambda k: json.loads(k)[varied[0]])
            why = (f"the largest {varied[0]} whose mean {metric['name']} is within {within:g}% of the best "
                   f"({means[best]:.4g})")
    # Only what tells the sweep's configurations apart is carried (not its model or dataset)
    values = {k: v for k, v in json.loads(chosen).items()
              if len({json.dumps(json.loads(c).get(k)) for c in means}) > 1}
    if not values:
        raise UsageError(f"--from-best {name}: its finished runs are all one configuration; nothing to choose")
    shown = ", ".join(f"{k}={v}" for k, v in values.items())
    reason = (f"{shown} from sweep {name}: {why}; mean {metric['name']} {means[chosen]:.4g} over "
              f"{len(runs[chosen])} seed(s), {len(means)} configurations compared")
    return Choice(values, reason, frozenset(map(str, models)))
