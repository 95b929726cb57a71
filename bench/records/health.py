"""What a run's numbers cannot be trusted for, read from its summary: one meaning per flag.

- Output collapse (`warning/output_collapsed`, any autoencoder, checked at test time): what the
  model outputs does not depend on its input, so every number describes a constant image. It
  shows two ways, and either flags the run (`output_collapse`, the one rule that the console,
  the tables, the reports and the leaderboard apply to the recorded numbers):
  - the reconstructions hardly change from one test image to the next: their spread across
    test images is under OUTPUT_SPREAD_MIN of the inputs' (`collapse/output_spread`). Judged
    relative to the data, not by an absolute level: a grey CIFAR-10 output varies by 0.0013
    where its inputs vary by 0.13, and would pass any fixed threshold small enough for MNIST's
    black backgrounds;
  - the reconstructions are no better than an image that ignores the input: their test MSE is
    not at least BASELINE_MARGIN below that of the training set's mean image for every test
    image (`test/mean_image_mse`, the best any constant image can do up to the split's
    difference) or of an all-black image (`test/black_mse`). A model worse than black (a linear
    AE at MSE 0.180 where black scores 0.104) is caught here.
- Posterior collapse (`collapse/posterior_collapse`, stochastic encoders only, from the
  collapse tool): no latent unit carries information about the input (active units 0, or a
  mean KL per dimension under 0.01 nats), whatever the decoder does. A sparse or plain code
  with few active units is not collapse: sparsity is what the sparse AE asks for.

- Codebook collapse (`test/codebook_collapse`, vector-quantised codes): most test batches
  use under a tenth of the codebook, so the code holds far fewer values than its size says.

Torch-free: the runner, the sweep runner and analysis all say the same words.
"""
from __future__ import annotations

# Reconstructions varying less than a fifth as much as their inputs: collapsed. Blobs that follow
# their input a little measured 5-17% (CIFAR-10's and coloured MNIST's AEs that draw no digit);
# a healthy conv AE after three epochs about 80%.
OUTPUT_SPREAD_MIN = 0.20
# A test MSE not a quarter below the mean image's (or all-black's): collapsed. A healthy conv AE
# after three epochs has about a tenth of the mean image's error on MNIST.
BASELINE_MARGIN = 0.25


def _true(value) -> bool:
    return value is True or value == 1 or str(value).lower() == "true"


def output_collapse(numbers: dict) -> str | None:
    """Why a run's outputs do not depend on its input, read from its numbers (a summary, or a
    test evaluation's results), or None. The words give the numbers the rule compared."""
    spread = _number(numbers.get("collapse/output_spread"))
    mse = _number(numbers.get("test/mse"))
    mean, black = _number(numbers.get("test/mean_image_mse")), _number(numbers.get("test/black_mse"))
    if spread is not None and spread < OUTPUT_SPREAD_MIN:
        return f"its outputs vary {_pct(spread)} as much as its inputs (under {OUTPUT_SPREAD_MIN:.0%})"
    if mse is not None:
        for name, base in (("the training set's mean image", mean), ("an all-black image", black)):
            if base is not None and mse > (1 - BASELINE_MARGIN) * base:
                return (f"its test MSE {mse:.4g} is no better than {name}'s {base:.4g} for every input "
                        f"(not {BASELINE_MARGIN:.0%} below it)")
    return None


def output_collapsed(summary: dict) -> bool:
    """The recorded flag, or the rule on the recorded numbers (runs recorded under an older rule)."""
    return _true(summary.get("warning/output_collapsed")) or output_collapse(summary) is not None


def posterior_collapsed(summary: dict) -> bool:
    return _true(summary.get("collapse/posterior_collapse"))


def collapse_words(summary: dict) -> str | None:
    """The flag of a run's summary in a few words, or None."""
    if output_collapsed(summary):
        why = output_collapse(summary)
        return f"COLLAPSED (output independent of the input{': ' + why if why else ''}; the numbers describe a " \
               f"constant image)"
    if posterior_collapsed(summary):
        return ("POSTERIOR COLLAPSE (no latent unit carries information about the input; "
                "samples and latent-space numbers describe the prior, not the data)")
    if _share(summary.get("test/codebook_collapse")) >= 0.5:
        return (f"CODEBOOK COLLAPSE (few codes take every position: {_share(summary.get('test/codes_used')):.0%} of "
                f"the codebook in use on the test set, perplexity {_share(summary.get('test/perplexity')):.1f})")
    return None


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value else None


def _pct(share: float) -> str:
    """A share in per cent with the digits that keep it on its side of a threshold (4.96%, not 5.0%)."""
    text = f"{share:.1%}"
    return f"{share:.3%}" if text == f"{OUTPUT_SPREAD_MIN:.1%}" and share != OUTPUT_SPREAD_MIN else text


def _share(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
