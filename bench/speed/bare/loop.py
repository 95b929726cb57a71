"""The yardstick of `python -m bench.speed --epoch`: a bare training loop that also validates.

    python bench/speed/bare/loop.py DATA_ROOT EPOCHS [LIMIT]

What one writes without a harness: Fashion-MNIST's 60,000 training images read from the idx
file and preloaded as floats, in a random order (the first LIMIT of it where given, as
`run.py --limit-train`), 10% held out for validation (54,000 / 6,000 of the whole set), the
MLP VAE of the Fashion-MNIST assignment (784-400-20, BCE summed over pixels + KL;
`bare_run.py`'s) with Adam at 1e-3, batch 128, and after each epoch a pass over the held-out
images. Prints one JSON line: the wall time at the start of each epoch and at the end of the
last, from which an epoch's cost is the time from one epoch's start to the next's. It imports
nothing of this project.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

try:  # the start-up yardstick's model and loss: beside this file when run as a script ...
    from script import VAE, loss_of
except ModuleNotFoundError:  # ... and in the package when imported as bench.speed.bare.loop
    from bench.speed.bare.script import VAE, loss_of


def main(data_root: str, epochs: str, limit: str = "0") -> int:
    torch.manual_seed(0)
    raw = (Path(data_root) / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").read_bytes()
    images = torch.from_numpy(np.frombuffer(raw, dtype=np.uint8, offset=16).copy()).float().div(255).view(-1, 784)
    order = torch.randperm(len(images))[:int(limit) or None]
    n_val = round(len(order) / 10)
    train, val = images[order[n_val:]], images[order[:n_val]]
    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    starts = []
    for _ in range(int(epochs)):
        starts.append(time.perf_counter())
        model.train()
        for idx in torch.randperm(len(train)).split(128):
            loss, _ = loss_of(model, train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val_loss = sum(loss_of(model, b)[0].item() * len(b) for b in val.split(256)) / len(val)
    starts.append(time.perf_counter())
    print(json.dumps({"epoch_starts": starts, "val_loss": val_loss}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
