"""Train the sample score's small feature networks of MNIST, Fashion-MNIST and the synthetic
smoke-test images once, by the
pinned recipe (`bench.tools._features.RECIPE`: three seeds, the first 20,000 labelled training
images of the split drawn by split seed 0), and write them into `bench/tools/feature_nets/` with a
manifest of their SHA-256 hashes. Runs then load these files instead of training networks of
their own, so a score means the same on every machine.

    python scripts/ship_feature_nets.py --data-root ../shared/datasets [--datasets synthetic]

`--datasets` retrains only those (the manifest keeps the others' entries).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="scripts/ship_feature_nets.py", description=__doc__.splitlines()[0])
    p.add_argument("--data-root", required=True, help="a folder with MNIST/raw and FashionMNIST/raw")
    p.add_argument("--datasets", default="mnist,fashion_mnist,synthetic", help="comma list of the datasets to train")
    args = p.parse_args(argv)
    import torch

    from bench.config.spec import resolve
    from bench.data import load_data
    from bench.tools._features import FEATURE_SEEDS, RECIPE, SHIPPED, feature_networks

    SHIPPED.mkdir(exist_ok=True)
    old = json.loads((SHIPPED / "manifest.json").read_text()) if (SHIPPED / "manifest.json").exists() else {}
    manifest = {"recipe": RECIPE, "datasets": old.get("datasets", {}) if old.get("recipe") == RECIPE else {}}
    for dataset in args.datasets.split(","):
        with tempfile.TemporaryDirectory() as cache:
            os.environ["AEBENCH_CACHE"] = cache
            data = load_data(resolve({"dataset": dataset, "data_root": args.data_root, "limit_test": 1,
                                      "split_seed": FEATURE_SEEDS[0]}))
            nets = feature_networks(data, torch.device("cpu"), None, shipped=False)
            files = {}
            for seed, member in zip(FEATURE_SEEDS, nets.members):
                path = SHIPPED / f"{dataset}-s{seed}.pt"
                torch.save({k: v.cpu() for k, v in member.clf.state_dict().items()}, path)
                files[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
        manifest["datasets"][dataset] = {"shape": list(data.shape), "outputs": data.num_classes,
                                         "trained_as": nets.identity, "files": files}
        print(f"{dataset}: {', '.join(files)} ({nets.identity})", flush=True)
    manifest["datasets"] = dict(sorted(manifest["datasets"].items()))
    (SHIPPED / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
