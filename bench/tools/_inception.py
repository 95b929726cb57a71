"""The sample score papers report: Frechet Inception Distance (`--sample-score inception`).

torchmetrics' FrechetInceptionDistance with its standard feature extractor, torch-fidelity's
InceptionV3 ("inception-v3-compat", 2048-d pool features, the weights of the reference
TensorFlow FID). Images go in as the standard asks: converted to uint8 and resized to 299x299
inside the extractor; grey images are repeated to three channels. The weights (about 100 MB)
are fetched once into the user cache folder (`inception/`) and read from there by every later
run. Where they cannot be fetched (no network, or AEBENCH_OFFLINE=1) the sample tool says so
in one line and scores with the dataset's small networks instead; `sample/score_space`
records which space a run's numbers are in.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from bench.core.cache import cache_root

URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"


class InceptionSpace:
    """The FID metric's own InceptionV3, loaded from `weights`: one member, no spread."""

    def __init__(self, weights: Path):
        self.weights = weights
        self.members = [self]
        self.identity = "inception-v3-fid2048-" + weights.stem.rsplit("-", 1)[-1]

    def metric(self, real: torch.Tensor):
        from torchmetrics.image.fid import FrechetInceptionDistance

        return FrechetInceptionDistance(feature=2048, normalize=True, reset_real_features=False,
                                        feature_extractor_weights_path=str(self.weights)).to(real.device)

    @staticmethod
    def prepare(x: torch.Tensor) -> torch.Tensor:
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def weights_path() -> Path:
    return cache_root() / "inception" / URL.rsplit("/", 1)[1]


def inception_space() -> tuple[InceptionSpace | None, str]:
    """(the Inception space, "") with its weights in the cache, fetched once if need be; or
    (None, why not) when they are not there and cannot be fetched."""
    from bench.core.files import locked
    from bench.core.progress import one_off, progress
    from bench.data.vision import host_answers

    path = weights_path()
    if path.is_file():
        return InceptionSpace(path), ""
    if not host_answers(URL):
        return None, f"the InceptionV3 weights are not in {path.parent} and github.com does not answer (offline)"
    with locked(path, "the InceptionV3 FID weights"):
        if not path.is_file():
            progress("sample: fetching the InceptionV3 FID weights once for this machine (about 100 MB)")
            part = path.with_suffix(".part")
            try:
                with one_off():
                    torch.hub.download_url_to_file(URL, str(part), progress=False)
                os.replace(part, path)
            except Exception as e:  # any network or disk fault ends in the same fallback
                return None, f"fetching the InceptionV3 weights failed ({type(e).__name__}: {e})"
    return InceptionSpace(path), ""
