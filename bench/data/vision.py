"""torchvision datasets' shared parts: opening a torchvision class on files that may be
missing (a download only where the host answers), and what every dataset's fixture uses to
write a few images in its real on-disk format.

Files follow torchvision's layout under --data-root and are read by torchvision's own
classes. When files are missing a download is tried only if the dataset's host answers
(set AEBENCH_OFFLINE=1 to never try); otherwise one line says where the files must go.
Each dataset is a file of this package (`mnist`, `cifar`, `stl10`, `celeba`, `folders`).
"""
from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch

from bench.core.errors import UsageError


def host_answers(url: str, timeout: float = 3.0) -> bool:
    """Whether a dataset's download host accepts a connection within `timeout` (torchvision's
    download would otherwise wait on each mirror in turn). A TCP connect is enough here; W&B's
    probe (`bench.records.track.server_reachable`) asks for an HTTP answer, as a hung server accepts
    connections and never replies."""
    if os.environ.get("AEBENCH_OFFLINE"):
        return False
    host = urlparse(url).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def open_dataset(name, make, root, url, where):
    """Build a torchvision dataset; download only when reachable; one-line errors otherwise."""
    try:
        return make(False)
    except RuntimeError as e:
        if "not found" not in str(e).lower() and "corrupted" not in str(e).lower():
            raise  # a torn file: the caller names it
    if host_answers(url):
        try:
            return make(True)
        except Exception as e:  # network faults of any kind end in the same advice
            raise UsageError(f"{name}: download failed ({type(e).__name__}); place the files in {where}") from None
    raise UsageError(f"{name}: files not found and no network; place them in {where} "
                     f"(torchvision layout under --data-root {root})")



def hwc_to_chw(a) -> torch.Tensor:
    return torch.as_tensor(a).permute(0, 3, 1, 2).contiguous()


# -- what the datasets' fixtures share (a fixture writes a few images in the real on-disk format)

def learnable_images(labels, size, channels, seed=0) -> np.ndarray:
    """(N, H, W, C) uint8 images whose content follows the label (a shape per class on a
    ramp, from the `synthetic` generator): a model can learn them, unlike noise."""
    from bench.data.synthetic import shapes

    labels = np.asarray(labels)
    x, y, _ = shapes(max(40, 4 * len(labels)), size, channels, seed)
    pools = {c: (y == c).nonzero().flatten().tolist() for c in range(10)}
    idx = [pools[int(c) % 10][i % len(pools[int(c) % 10])] for i, c in enumerate(labels)]
    return x[idx].permute(0, 2, 3, 1).numpy()


def md5(path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def trust_written(patch, cls, base: Path) -> None:
    """Point a torchvision class's md5 table at the files a fixture wrote (`patch.setattr`,
    pytest's monkeypatch): the real loading code then runs unchanged on them."""
    if hasattr(cls, "file_list"):  # CelebA: (id, md5, name)
        patch.setattr(cls, "file_list", [(i, md5(base / n) if (base / n).exists() else m, n)
                                         for i, m, n in cls.file_list])
        return
    for attr in ("train_list", "test_list"):
        patch.setattr(cls, attr, [[n, md5(base / n)] for n, _ in getattr(cls, attr)])
    if isinstance(getattr(cls, "meta", None), dict):
        patch.setattr(cls, "meta", dict(cls.meta, md5=md5(base / cls.meta["filename"])))
