"""Classify: labels from images (the CNN assignment's classifier, linear probes on a frozen
encoder), scored by test accuracy and loss, which it may record every epoch and select on."""
from __future__ import annotations

from bench.config.tasks import register_task


def evaluate(model, data, spec, device) -> dict:
    from bench.measure import metrics

    res = metrics.classification(model, data.test, device, amp=spec.amp, channels_last=spec.channels_last)
    return {f"test/{k}": v for k, v in res.items()}


def random_labels(x, num_classes):
    import torch

    return torch.randint(0, num_classes, (x.shape[0],))


register_task("classify", targets="labels", test_keys=frozenset({"acc", "loss"}), autoencoder=False,
              evaluate=evaluate, output=lambda x, num_classes: ("logits", (x.shape[0], num_classes)),
              example_target=random_labels, selects_on_test=True,
              description="predict the image's label (accuracy, loss)")
