"""The tasks a model can train, each declared once: what its targets are, what a test
records, and what a run of it may ask for.

A model family registers its task (`register_model(task=...)`; an autoencoder's config can
turn `reconstruct` into `denoise`). Everything that depends on the task reads it here: the
run's checks (a classifier needs labelled data), the sweep's planning (which test numbers a
run records, which datasets a model can use), and the evaluation tools (which need an
autoencoder). How a task is evaluated lives with the evaluation code (`bench.evaluate`).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    name: str
    targets: str | None  # the data kind its targets come from: "labels", "masks", or None (the images)
    test_keys: frozenset  # the test numbers a run records (`test/<key>`)
    autoencoder: bool  # a reconstruction of its input: the latent-space tools apply
    selects_on_test: bool = False  # may pick best.pt by a test metric recorded every epoch (`--select-on test`)


_IMAGE_KEYS = frozenset({"mse", "mae", "psnr", "ssim", "snr"})
TASKS = {t.name: t for t in (
    Task("reconstruct", None, _IMAGE_KEYS, autoencoder=True),
    Task("denoise", None, _IMAGE_KEYS, autoencoder=True),
    Task("classify", "labels", frozenset({"acc", "loss"}), autoencoder=False, selects_on_test=True),
    Task("segment", "masks", frozenset({"dice", "iou"}), autoencoder=False),
)}


def task(name: str) -> Task:
    return TASKS[name]


def same_kind(a: str, b: str) -> bool:
    """Whether two task names describe the same training (a denoiser at noise 0 reconstructs)."""
    return a == b or (TASKS[a].autoencoder and TASKS[b].autoencoder)
