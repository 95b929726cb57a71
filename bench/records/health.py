"""What a run's numbers cannot be trusted for, read from its summary: one meaning per flag.

- Output collapse (`warning/output_collapsed`, any autoencoder, checked at test time): the
  reconstructions hardly change from one test image to the next, so every number describes
  a constant image. It is judged relative to the data (`collapse/output_spread`, the
  reconstructions' spread across test images as a share of the inputs' spread), not by an
  absolute level: a grey CIFAR-10 output varies by 0.0013 where its inputs vary by 0.13, and
  would pass any fixed threshold small enough for MNIST's black backgrounds.
- Posterior collapse (`collapse/posterior_collapse`, stochastic encoders only, from the
  collapse tool): no latent unit carries information about the input (active units 0, or a
  mean KL per dimension under 0.01 nats), whatever the decoder does. A sparse or plain code
  with few active units is not collapse: sparsity is what the sparse AE asks for.

- Codebook collapse (`test/codebook_collapse`, vector-quantised codes): most test batches
  use under a tenth of the codebook, so the code holds far fewer values than its size says.

Torch-free: the runner, the sweep runner and analysis all say the same words.
"""
from __future__ import annotations

OUTPUT_SPREAD_MIN = 0.05  # reconstructions varying less than 5% as much as their inputs: collapsed


def _true(value) -> bool:
    return value is True or value == 1 or str(value).lower() == "true"


def output_collapsed(summary: dict) -> bool:
    return _true(summary.get("warning/output_collapsed"))


def posterior_collapsed(summary: dict) -> bool:
    return _true(summary.get("collapse/posterior_collapse"))


def collapse_words(summary: dict) -> str | None:
    """The flag of a run's summary in a few words, or None."""
    if output_collapsed(summary):
        spread = summary.get("collapse/output_spread")
        share = f": its outputs vary {spread:.1%} as much as its inputs" if isinstance(spread, float) else ""
        return f"COLLAPSED (output independent of the input{share}; the numbers describe a constant image)"
    if posterior_collapsed(summary):
        return ("POSTERIOR COLLAPSE (no latent unit carries information about the input; "
                "samples and latent-space numbers describe the prior, not the data)")
    if _share(summary.get("test/codebook_collapse")) >= 0.5:
        return (f"CODEBOOK COLLAPSE (few codes take every position: {_share(summary.get('test/codes_used')):.0%} of "
                f"the codebook in use on the test set, perplexity {_share(summary.get('test/perplexity')):.1f})")
    return None


def _share(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
