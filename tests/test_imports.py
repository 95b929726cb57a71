"""The import graph is a tree: every module imports alone (in an interpreter that holds none of
the project's modules), no two
modules import each other, the registry is a leaf that finds the families itself, metrics
know nothing of training or of particular models, and the library never imports its
analysis layer. The rules are read from the source (what each module imports when it is
imported, transitively); the interpreters check that the reading is right."""
import ast
import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT, hang_guard

PACKAGES = sorted(str(p.parent.relative_to(ROOT)).replace("/", ".")
                  for p in [*(ROOT / "bench").rglob("__init__.py"), ROOT / "analysis" / "__init__.py"])
MODULES = sorted(
    ["registry"] + [p for p in PACKAGES if p != "analysis"]
    + [f"{pkg}.{p.stem}" for pkg in PACKAGES for p in (ROOT / pkg.replace(".", "/")).glob("*.py")
       if p.stem not in ("__init__", "__main__")])

# The packages of bench/, from the floor up: a module imports (lazily too) only from its own
# package and the ones below it. The registry is the config layer's name lookup; the entry
# modules `bench.api` (Python) and `bench.evaluate` (the command line) sit on top, with analysis.
LAYERS = ["core", "config", "records", "data", "measure", "models", "tools", "run", "tasks", "sweep", "suite", "speed"]

# One interpreter imports the heavy third-party libraries once, then forks a child per module
# of the project: each child starts with no module of the project loaded, imports one, and says
# which of the project's it then holds (about 0.1 s a module instead of a fresh torch import).
PROBE = """
import importlib, json, os, sys, traceback
import numpy, torch, torchvision, scipy, sklearn, pandas, PIL, yaml  # what most modules import
assert not [m for m in sys.modules if m.split(".")[0] in ("bench", "analysis", "registry")]
out = {}
for module in sys.argv[1:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(module)
            text = json.dumps(sorted(sys.modules))
        except BaseException:
            text = json.dumps({"error": traceback.format_exc()[-2000:]})
        with os.fdopen(write, "w") as f:
            f.write(text)
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        out[module] = json.loads(f.read() or '{"error": "the child died"}')
    os.waitpid(pid, 0)
print(json.dumps(out))
"""


def source(module: str):
    base = ROOT / module.replace(".", "/")
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def imported(module: str, at_import_only: bool) -> set[str]:
    """The project's modules that `module` names in its import statements: those run when it is
    imported (module and class level), or every one (functions' lazy imports too)."""
    tree = ast.parse(source(module).read_text())
    found = set()

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if at_import_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.add(child.module)
                found.update(f"{child.module}.{a.name}" for a in child.names)
            visit(child)
    visit(tree)
    return {m for m in found if m in MODULES and m != module}


def with_parents(names: set[str]) -> set[str]:
    """Importing a.b.c imports a and a.b first."""
    return names | {".".join(n.split(".")[:i]) for n in names for i in range(1, n.count(".") + 1)} & set(MODULES)


@pytest.fixture(scope="module")
def graph():
    """module -> every module of the project loaded by importing it (transitively)."""
    direct = {m: with_parents(imported(m, at_import_only=True)) for m in MODULES}
    closure = {}
    for m in MODULES:
        seen, todo = set(), [m]
        while todo:
            for d in direct[todo.pop()] - seen:
                seen.add(d)
                todo.append(d)
        closure[m] = seen | with_parents({m})
    return closure


def loaded_by(modules: list[str]) -> dict[str, set[str]]:
    p = subprocess.run([sys.executable, "-c", PROBE, *modules], cwd=ROOT, capture_output=True, text=True,
                       timeout=hang_guard(600), env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert p.returncode == 0, p.stderr[-2000:]
    found = json.loads(p.stdout.strip().splitlines()[-1])
    failed = {m: v["error"] for m, v in found.items() if isinstance(v, dict)}
    assert not failed, f"modules that do not import alone: {failed}"
    return {m: set(v) for m, v in found.items()}


@pytest.mark.slow(reason="a fresh interpreter per module of the project (about 90 imports of torch)")
def test_every_module_imports_alone_and_loads_what_its_source_says(graph):
    loaded = loaded_by(MODULES)
    assert len(MODULES) > 30
    for m in MODULES:
        assert m in loaded[m]
        ours = {x for x in loaded[m] if x in MODULES}
        assert graph[m] <= ours, (m, graph[m] - ours)  # what the source says is loaded ...
    for rule in RULES:  # ... and the rules hold for all that is (discovery loads families too)
        rule({m: {x for x in loaded[m] if x in MODULES} for m in MODULES})


def test_no_two_modules_import_each_other():
    """No circle, lazy imports included: the house is a tree of dependencies."""
    edges = {m: imported(m, at_import_only=False) for m in MODULES}
    state, path = {}, []

    def visit(m):
        state[m] = "open"
        path.append(m)
        for d in edges[m]:
            if state.get(d) == "open":
                raise AssertionError("import circle: " + " -> ".join(path[path.index(d):] + [d]))
            if d not in state:
                visit(d)
        path.pop()
        state[m] = "done"
    for m in MODULES:
        if m not in state:
            visit(m)


def layer(module: str) -> int:
    """Where a module stands: the index of its package in LAYERS (entry modules and analysis on top)."""
    if module == "registry":
        return LAYERS.index("config")
    parts = module.split(".")
    if parts[0] == "analysis" or module in ("bench.api", "bench.evaluate"):
        return len(LAYERS)
    return LAYERS.index(parts[1]) if len(parts) > 1 else -1


def test_every_module_belongs_to_a_package_of_the_house():
    """bench/ itself holds its __init__ and the two entry modules; everything else is in a package
    named in LAYERS, and every package of bench/ is named there."""
    loose = {p.stem for p in (ROOT / "bench").glob("*.py")}
    assert loose == {"__init__", "api", "evaluate"}, loose
    packages = {p.parent.name for p in (ROOT / "bench").glob("*/__init__.py")}
    assert packages == set(LAYERS), packages ^ set(LAYERS)


def test_imports_between_packages_flow_one_way():
    """Lazy imports included: a package never reaches up to one above it, so the floor plan is
    the order in LAYERS."""
    up = sorted(f"{m} -> {d}" for m in MODULES for d in imported(m, at_import_only=False)
                if layer(d) > layer(m))
    assert not up, up


def test_no_package_reaches_into_another_ones_private_names():
    """A package's face is its public modules and names: another package never imports a module
    or a name that starts with an underscore (within a package, a module may)."""
    private = []
    for m in MODULES:
        own = ".".join(m.split(".")[:2])
        for node in ast.walk(ast.parse(source(m).read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                    and node.module.startswith("bench") and not node.module.startswith(own + ".") and node.module != own:
                names = node.module.split(".") + [a.name for a in node.names]
                private += [f"{m}: {node.module} {a.name}" for a in node.names
                            if any(n.startswith("_") and n != "__future__" for n in names)]
    assert not private, private


def registry_is_a_leaf(graph):
    ours = {m for m in graph["registry"] if m.startswith(("bench", "analysis"))}
    assert ours <= {"bench", "bench.core", "bench.core.errors"}, ours  # families are found when asked for, not at import


def metrics_know_nothing_of_training_or_models(graph):
    assert not {m for m in graph["bench.measure.metrics"] if m.startswith(("bench.run.train", "bench.models", "registry"))}


def library_never_imports_analysis(graph):
    for module, loaded in graph.items():
        if not module.startswith("analysis"):
            assert not {m for m in loaded if m.startswith("analysis")}, module


RULES = [registry_is_a_leaf, metrics_know_nothing_of_training_or_models, library_never_imports_analysis]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_import_rule(graph, rule):
    rule(graph)


def test_a_new_family_is_one_file_with_its_own_keys(tmp_path):
    """Registration by discovery and keys owned by the family: a model defined in a new file
    of bench/models is listed, and its config's key (help, default, range) is on the command
    line, range-checked, and refused for every other model. The file lives in a folder of
    this test's own, added to the package's search path, so the source tree is untouched."""
    (tmp_path / "zz_probe_family.py").write_text(
        "from dataclasses import dataclass\n"
        "from torch import nn\n"
        "from bench.config.keys import ImageInput, key\n"
        "from registry import register_model\n\n"
        "@dataclass\nclass ZzConfig(ImageInput):\n"
        "    \"\"\"a family only this test defines\"\"\"\n"
        "    zz_width: int = key(3, 'width of the zz layer', lo=1, hi=9)\n\n"
        "@register_model(config=ZzConfig, hidden=True)\n"
        "def zz_probe_model(cfg):\n    \"\"\"a model only this test defines\"\"\"\n    return nn.Identity()\n")
    code = ("import sys, bench.models\n"
            f"bench.models.__path__.append({str(tmp_path)!r})\n"
            "import registry\n"
            "from bench.config.cli import build_parser\n"
            "from bench.config.run_keys import MODEL_KEYS\n"
            "from bench.config.spec import resolve\n"
            "from bench.core.errors import UsageError\n"
            "from bench.run.runner import main\n"
            "print('zz_probe_model' in registry.MODELS, 'zz_width' in MODEL_KEYS)\n"
            "print('--zz-width INT' in build_parser().format_help())\n"
            "try:\n    resolve({'zz_width': 10})\nexcept UsageError as e:\n    print(e)\n"
            "sys.stdout.flush()\n"
            f"main(['--model', 'ae', '--dataset', 'synthetic', '--zz-width', '2', '--wandb', 'disabled', "
            f"'--runs-dir', {str(tmp_path / 'runs')!r}])\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=hang_guard(300),
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert p.returncode == 2, p.stderr[-1000:]
    out = p.stdout.splitlines()
    assert out[0] == "True True" and out[1] == "True"
    assert out[2] == "--zz-width: 10 is out of range; valid: [1, 9]"
    assert "--zz-width: model ae does not take it" in p.stderr
    assert not (ROOT / "bench" / "models" / "zz_probe_family.py").exists()


def generated_tests_with(folder, package: str, test_file, name: str) -> subprocess.CompletedProcess:
    """The project's generated tests in `test_file`, unedited, run on the case `name` with the
    plugin files of `folder` added to `package`'s search path (the source tree stays untouched)."""
    (folder / "conftest.py").write_text(
        f"import sys, {package}\n"
        f"sys.path.insert(0, {str(ROOT / 'tests')!r})\n"
        f"{package}.__path__.append({str(folder)!r})\n")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", "-m", "",
                           "--rootdir", str(folder), "-c", os.devnull, "--confcutdir", str(folder),
                           "-p", "conftest", str(test_file), "-k", name],
                          cwd=folder, capture_output=True, text=True, timeout=hang_guard(300),
                          env=dict(os.environ, PYTHONPATH=f"{folder}:{ROOT}:{ROOT / 'tests'}"))


def test_a_new_dataset_is_one_file_with_its_own_keys_and_fixture(tmp_path):
    """A dataset defined in a new file of bench/data, with a key and a fixture of its own, is
    listed, its key is on the command line for it alone, and the generated dataset test
    (tests/data/test_data.py, unedited) loads it from the files its fixture writes."""
    (tmp_path / "zz_probe_data.py").write_text(
        "from dataclasses import dataclass\n"
        "from pathlib import Path\n"
        "import numpy as np, torch\n"
        "from bench.data import Source, Split\n"
        "from bench.config.keys import DatasetConfig, key\n"
        "from registry import register_dataset\n\n"
        "@dataclass\nclass ZzConfig(DatasetConfig):\n"
        "    zz_flip: bool = key(False, 'mirror the images')\n\n"
        "def _files(root, patch):\n"
        "    (Path(root) / 'zz').mkdir()\n"
        "    np.save(Path(root) / 'zz' / 'x.npy', np.arange(40 * 64, dtype=np.uint8).reshape(40, 1, 8, 8))\n\n"
        "@register_dataset(shape=(1, 8, 8), config=ZzConfig, fixture=_files)\n"
        "def zz_probe_data(cfg, task):\n    \"\"\"a dataset only this test defines\"\"\"\n"
        "    x = torch.from_numpy(np.load(Path(cfg.data_root) / 'zz' / 'x.npy'))\n"
        "    x = x.flip(-1) if cfg.zz_flip else x\n"
        "    y = torch.arange(40) % 10\n"
        "    return Source(Split(x[:30], y[:30]), Split(x[30:], y[30:]), [str(i) for i in range(10)])\n")
    p = generated_tests_with(tmp_path, "bench.data", ROOT / "tests" / "data" / "test_data.py", "zz_probe_data")
    assert "1 passed" in p.stdout, p.stdout[-2000:] + p.stderr[-1000:]
    code = ("import bench.data\n"
            f"bench.data.__path__.append({str(tmp_path)!r})\n"
            "from bench.config.cli import build_parser\n"
            "from bench.core.errors import UsageError\n"
            "from bench.config.spec import resolve\n"
            "print(resolve({'dataset': 'zz_probe_data', 'zz_flip': True}).zz_flip)\n"
            "print('--zz-flip' in build_parser(dataset='zz_probe_data').format_help())\n"
            "try:\n    resolve({'dataset': 'mnist', 'zz_flip': True})\nexcept UsageError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=hang_guard(300),
                         env=dict(os.environ, PYTHONPATH=str(ROOT))).stdout.splitlines()
    assert out[:2] == ["True", "True"] and out[2].startswith("--zz-flip: dataset mnist does not take it")
    assert not (ROOT / "bench" / "data" / "zz_probe_data.py").exists()


ZZ_TASK = """\"\"\"A task only this test defines: the image upside down, scored by its MSE.\"\"\"
from dataclasses import dataclass

import torch
from torch import nn

from bench.config.keys import ImageInput
from bench.config.tasks import register_task
from bench.models.base import BenchModel
from registry import register_model


@dataclass
class FlipConfig(ImageInput):
    \"\"\"a family only this test defines\"\"\"


class Flip(BenchModel):
    def __init__(self, cfg):
        super().__init__()
        self.conv = nn.Conv2d(cfg.in_channels, cfg.in_channels, 3, padding=1)

    def encode(self, x):
        return self.conv(x).flatten(1)

    def forward(self, x, y=None):
        recon = torch.sigmoid(self.conv(x))
        loss = ((recon - x.flip(-2)) ** 2).mean()
        return {"loss": loss, "recon": recon, "z": recon.flatten(1), "flip_mse": loss.detach()}


@register_model(config=FlipConfig, task="zz_flip")
def zz_flip_model(cfg):
    \"\"\"a model only this test defines\"\"\"
    return Flip(cfg)


def evaluate(model, data, cfg, device):
    from bench.data import batches
    with torch.no_grad():
        errs = [((model(x)["recon"] - x.flip(-2)) ** 2).mean().item() for x, _ in batches(data.test, 100)]
    return {"test/flip_mse": sum(errs) / len(errs)}


register_task("zz_flip", targets=None, test_keys=frozenset({"flip_mse"}), autoencoder=False, evaluate=evaluate,
              output=lambda x, num_classes: ("recon", tuple(x.shape)), in_suite=True)
"""


def test_a_new_task_is_one_file_picked_up_by_the_help_the_generated_tests_and_the_suite(tmp_path):
    """A task kind defined in one new file of bench/tasks (with the model that trains it), with no
    edit anywhere else: `--task` offers it, a run trains and evaluates it, the generated model
    tests (tests/models/test_models.py, unedited) build and check its model, and the suite's `all`
    takes its model. The file lives in a folder of this test's own, added to the package's
    search path, so the source tree is untouched."""
    (tmp_path / "zz_flip.py").write_text(ZZ_TASK)
    code = ("import json, bench.tasks\n"
            f"bench.tasks.__path__.append({str(tmp_path)!r})\n"
            "from bench.config.cli import build_parser\n"
            "from bench.run.runner import execute\n"
            "from bench.suite.standard import families\n"
            "print('zz_flip' in build_parser().format_help())\n"
            "print('zz_flip_model' in families({'families': 'all'}))\n"
            f"runs = {str(tmp_path / 'runs')!r}\n"
            "code = execute(['--model', 'zz_flip_model', '--dataset', 'synthetic', '--task', 'zz_flip', '--epochs', '1',"
            " '--limit-train', '64', '--limit-test', '32', '--wandb', 'disabled', '--runs-dir', runs])\n"
            "from bench.records.store import list_runs\n"
            "print(code, sorted(k for k in list_runs(runs)[0].read_summary() if k.startswith('test/')))\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=hang_guard(300),
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    out = p.stdout.splitlines()
    assert out[:2] == ["True", "True"], p.stdout + p.stderr[-1000:]
    assert out[-1].startswith("0 ") and "'test/flip_mse'" in out[-1], p.stdout + p.stderr[-1000:]
    p = generated_tests_with(tmp_path, "bench.tasks", ROOT / "tests" / "models" / "test_models.py", "zz_flip_model")
    assert " passed" in p.stdout and "failed" not in p.stdout, p.stdout[-2000:] + p.stderr[-1000:]
    assert not (ROOT / "bench" / "tasks" / "zz_flip.py").exists()


def test_every_model_key_is_declared_by_a_family_with_help():
    import dataclasses

    import registry
    from bench.config.keys import cli_keys
    from bench.config.run_keys import FIELDS, MODEL_KEYS, RUN_FIELDS

    declared = {k for e in registry.MODELS.values() for k in cli_keys(e.config_cls)}
    assert MODEL_KEYS == declared - RUN_FIELDS and not (MODEL_KEYS & RUN_FIELDS)
    for k in MODEL_KEYS:
        assert FIELDS[k].metadata["help"], k
    # a key shared by several families is one spec: same help, choices and range everywhere
    for k in MODEL_KEYS:
        specs = {json.dumps({m: v for m, v in f.metadata.items() if m != "internal"}, sort_keys=True, default=str)
                 for e in registry.MODELS.values() for n, f in cli_keys(e.config_cls).items() if n == k}
        assert len(specs) == 1, (k, specs)
    # every family's Config is a FamilyConfig that records exactly the keys a user may set
    from bench.config.keys import FamilyConfig
    for e in registry.MODELS.values():
        assert issubclass(e.config_cls, FamilyConfig), e.name
        assert set(e.config_cls(**dict(e.defaults)).to_dict()) <= set(cli_keys(e.config_cls)), e.name


def test_the_family_resolves_its_own_keys():
    """Two levels: the run keys, then the chosen family's Config holding only its own keys
    with this model's defaults, derived keys and task; the record is flat."""
    import dataclasses

    import registry
    from bench.config.keys import cli_keys
    from bench.config.run_keys import RUN_FIELDS, RunKeys
    from bench.config.spec import resolve

    assert {f.name for f in dataclasses.fields(RunKeys)} == RUN_FIELDS
    cfg = resolve({"model": "dae"})
    entry = registry.model_entry("dae")
    assert type(cfg.family) is entry.config_cls
    assert cfg.noise_level == dict(entry.defaults)["noise_level"] > 0  # dae's default, not the family's 0
    assert entry.task_of(cfg.family) == "denoise"
    ae = registry.model_entry("ae")
    assert ae.task_of(resolve({"model": "ae"}).family) == "reconstruct"
    assert ae.task_of(resolve({"model": "ae", "noise_std": 0.2}).family) == "denoise"  # the older name
    record = resolve({"model": "mlp_vae", "mlp_dims": "400,100,7"}).to_dict()
    assert record["hidden_dims"] == [400, 100] and record["latent_dim"] == 7  # derived by the family
    assert set(record) == RUN_FIELDS | set(cli_keys(registry.model_entry("mlp_vae").config_cls))
    assert "mlp_dims" not in resolve({"model": "mlp_vae"}).to_dict()  # an unset shorthand is not recorded
    assert resolve({"probe_from": "some-run"}).model == "linear_probe"  # a key that chooses its model


def test_no_function_is_over_sixty_lines():
    """Read statically: every function and method of the library, the analysis and the two
    entry points fits on a screen."""
    files = [*(ROOT / "bench").rglob("*.py"), *(ROOT / "analysis").rglob("*.py"), ROOT / "run.py", ROOT / "registry.py"]
    long = [f"{p.relative_to(ROOT)}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)"
            for p in files for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 60]
    assert not long, long


def test_no_library_file_is_over_four_hundred_lines():
    """A module is one responsibility a reader holds in mind: none of the library, the analysis
    or the entry points runs past 400 lines (split it along what it does)."""
    files = [*(ROOT / "bench").rglob("*.py"), *(ROOT / "analysis").rglob("*.py"), ROOT / "run.py", ROOT / "registry.py"]
    long = {str(p.relative_to(ROOT)): n for p in files if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def test_wandb_is_imported_by_tracking_only():
    """Every other module reaches W&B through bench.records.track (its API, its tables, its runs)."""
    files = [*(ROOT / "bench").rglob("*.py"), *(ROOT / "analysis").rglob("*.py"), ROOT / "run.py", ROOT / "registry.py"]
    importers = {str(p.relative_to(ROOT)) for p in files for n in ast.walk(ast.parse(p.read_text()))
                 if (isinstance(n, ast.Import) and any(a.name.split(".")[0] == "wandb" for a in n.names))
                 or (isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "wandb")}
    assert importers == {"bench/records/track.py"}, importers


def test_the_package_pins_what_requirements_pins():
    """`pip install .` alone resolves the tested stack: pyproject's dependencies (and its test
    extra) are exactly requirements.txt's pins."""
    import tomllib

    from conftest import ROOT

    pins = {line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
            if "==" in line}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = set(project["dependencies"]) | set(project["optional-dependencies"]["test"])
    assert declared == pins and len(pins) >= 15


def test_help_is_clean_and_the_installed_command_prints_the_same(tmp_path):
    """`--help` has no doubled `%`, no empty default, no tool name split over two lines, and
    `aebench-run --help` (the installed command) prints what `python run.py --help` prints."""
    import subprocess
    import sys
    from pathlib import Path

    from conftest import run_cli

    from bench.tools import names

    p = run_cli(["--help"], cwd=tmp_path)
    assert p.returncode == 0 and "--eval" in p.stdout
    assert "%%" not in p.stdout and "(default: )" not in p.stdout and "80% of the memory" in p.stdout
    words = set(p.stdout.replace(",", " ").split())
    assert set(names()) <= words  # each tool name whole on one line
    installed = Path(sys.executable).parent / "aebench-run"
    assert installed.exists(), "the project is installed with `pip install -e .` (requirements.txt)"
    q = subprocess.run([str(installed), "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert q.returncode == 0 and q.stdout.replace("aebench-run", "run.py") == p.stdout


def test_analysis_reads_runs_without_torch_or_any_model(finished_run_template, tmp_path):
    """The table, the figures and the report of a finished run load neither torch nor a model
    family: analysis reads records (config.json names each run's keys; older key names come
    from `bench.config.keys.RENAMED`)."""
    code = ("import sys\n"
            "from analysis import tables, report\n"
            f"assert tables.main(['--runs', {str(finished_run_template.parent)!r}]) in (0, None)\n"
            f"assert report.main(['--runs', {str(finished_run_template.parent)!r}, '--out', {str(tmp_path / 'r')!r}]) "
            "in (0, None)\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith(('bench.models', 'registry'))))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=hang_guard(300))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout[-500:]
    assert (tmp_path / "r" / "report.html").exists()


def test_a_tiny_run_never_imports_matplotlib(tmp_path):
    """Every run draws its reconstructions with Pillow (bench.measure.grids); matplotlib, about half a
    CPU-second, is imported only by what needs it (curves of 2+ epochs, the tools' plots)."""
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "run.py"), "--model", "ae", "--dataset",
                        "synthetic", "--epochs", "1", "--limit-train", "64", "--limit-test", "32", "--wandb",
                        "disabled", "--runs-dir", str(tmp_path / "runs")], cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "| bench.run.runner" in p.stderr  # importtime's report is there ...
    assert not [line for line in p.stderr.splitlines() if line.rstrip().endswith("| matplotlib")]  # ... without it
    assert list((tmp_path / "runs").glob("*/figures/reconstructions.png"))


def test_every_slow_check_says_why_it_is_slow():
    """A test kept out of the README's test command says in its marker what makes it slow."""
    import re

    bare = [f"{p.relative_to(ROOT)}:{n}" for p in (ROOT / "tests").rglob("test_*.py")
            for n, line in enumerate(p.read_text().splitlines(), 1)
            if re.search(r"pytest\.mark\.slow(?!\(reason=)", line)]
    assert not bare, bare
