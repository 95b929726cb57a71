"""Denoise: an autoencoder trained on corrupted inputs against the clean image (Vincent et al.
2008). It is evaluated as `reconstruct` is, and also on the corrupted test images
(`test_noisy/...`, with the noisy input's own scores beside them)."""
from __future__ import annotations

from bench.config.tasks import register_task
from bench.tasks.reconstruct import IMAGE_KEYS, evaluate, figure, same_image

register_task("denoise", targets=None, test_keys=IMAGE_KEYS, autoencoder=True, evaluate=evaluate,
              output=same_image, figure=figure, in_suite=True,
              description="reconstruct the clean image from a corrupted one (reconstruct's twin)")
