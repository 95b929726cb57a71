"""The import graph is a tree: every module imports alone in a fresh interpreter, the
registry is a leaf that finds the families itself, metrics know nothing of training or of
particular models, and the library never imports its analysis layer."""
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import ROOT

MODULES = sorted(
    ["registry"]
    + [f"bench.{p.stem}" for p in (ROOT / "bench").glob("*.py") if p.stem != "__init__"]
    + [f"bench.models.{p.stem}" for p in (ROOT / "bench" / "models").glob("*.py") if p.stem != "__init__"]
    + [f"bench.data.{p.stem}" for p in (ROOT / "bench" / "data").glob("*.py") if p.stem != "__init__"]
    + [f"analysis.{p.stem}" for p in (ROOT / "analysis").glob("*.py") if p.stem != "__init__"])

PROBE = "import importlib, json, sys; importlib.import_module(sys.argv[1]); print(json.dumps(sorted(sys.modules)))"


def loaded_by(module: str) -> set[str]:
    p = subprocess.run([sys.executable, "-c", PROBE, module], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"{module} does not import alone:\n{p.stderr[-2000:]}"
    return set(json.loads(p.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def graph():
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(MODULES, pool.map(loaded_by, MODULES)))


def test_every_module_imports_alone(graph):
    assert set(graph) == set(MODULES) and len(MODULES) > 30


def test_registry_is_a_leaf(graph):
    ours = {m for m in graph["registry"] if m.startswith(("bench", "analysis"))}
    assert ours <= {"bench", "bench.errors"}, ours  # families are found when asked for, not at import


def test_metrics_know_nothing_of_training_or_models(graph):
    assert not {m for m in graph["bench.metrics"] if m.startswith(("bench.train", "bench.models", "registry"))}


def test_the_library_never_imports_analysis(graph):
    for module, loaded in graph.items():
        if not module.startswith("analysis"):
            assert not {m for m in loaded if m.startswith("analysis")}, module


def test_a_new_family_module_is_found_without_editing_anything(tmp_path):
    """Registration by discovery: a model defined in a new file of bench/models is listed."""
    family = ROOT / "bench" / "models" / "zz_probe_family.py"
    family.write_text(
        "from dataclasses import dataclass\n"
        "from torch import nn\n"
        "from bench.models.base import BenchModel\n"
        "from registry import register_model\n\n"
        "@dataclass\nclass Cfg:\n    in_channels: int = 1\n    image_size: int = 28\n\n"
        "@register_model(config=Cfg, hidden=True)\n"
        "def zz_probe_model(**kw):\n    \"\"\"a model only this test defines\"\"\"\n    return nn.Identity()\n")
    try:
        p = subprocess.run([sys.executable, "-c", "import registry; print('zz_probe_model' in registry.MODELS)"],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    finally:
        family.unlink()
    assert p.returncode == 0 and p.stdout.strip() == "True", p.stderr[-1000:]
