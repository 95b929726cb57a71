"""The yardstick of `python -m bench.speed --startup`: a bare script doing a tiny run's work.

    python bench/speed/bare/script.py DATA_ROOT OUT_DIR

It does what `run.py --model mlp_vae --dataset fashion_mnist --hidden-dims 400 --latent-dim 20
--limit-train 128 --limit-test 128 --epochs 1 --wandb disabled` does, as one would write it
without a harness: import torch, read 128 training and 128 test images from the idx files,
the same MLP VAE (784-400-20, BCE summed over pixels + KL) with Adam, one epoch (the run's
split: 115 images trained in one step, 13 validated), test MSE and PSNR, a checkpoint and a
JSON summary. It imports nothing of this project, so that its cost is the work alone.
"""
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def read_images(path: Path, n: int) -> torch.Tensor:
    """The first `n` images of an idx3 file, as floats in [0, 1], flattened."""
    with open(path, "rb") as f:
        raw = f.read(16 + n * 784)
    return torch.from_numpy(np.frombuffer(raw, dtype=np.uint8, offset=16).copy()).float().div(255).view(n, 784)


class VAE(nn.Module):
    def __init__(self, hidden=400, latent=20):
        super().__init__()
        self.fc1, self.mu, self.logvar = nn.Linear(784, hidden), nn.Linear(hidden, latent), nn.Linear(hidden, latent)
        self.fc3, self.fc4 = nn.Linear(latent, hidden), nn.Linear(hidden, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def loss_of(model, x):
    recon, mu, logvar = model(x)
    bce = F.binary_cross_entropy(recon, x, reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return (bce + kl) / len(x), recon


def main(data_root: str, out_dir: str) -> int:
    t0 = time.time()
    torch.manual_seed(0)
    raw = Path(data_root) / "FashionMNIST" / "raw"
    train, test = read_images(raw / "train-images-idx3-ubyte", 128), read_images(raw / "t10k-images-idx3-ubyte", 128)
    order = torch.randperm(128)
    train, val = train[order[:115]], train[order[115:]]
    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    loss, _ = loss_of(model, train)
    opt.zero_grad()
    loss.backward()
    opt.step()
    model.eval()
    with torch.no_grad():
        val_loss, _ = loss_of(model, val)
        _, recon = loss_of(model, test)
        mse = F.mse_loss(recon, test).item()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 1}, out / "last.pt")
    summary = {"train/loss": loss.item(), "val/loss": val_loss.item(), "test/mse": mse,
               "test/psnr": 10 * math.log10(1 / mse), "seconds": time.time() - t0}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
