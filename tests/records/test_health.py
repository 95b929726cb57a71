"""The one collapse rule (`bench.records.health.output_collapse`), on the cases it must catch and
the healthy run it must leave alone, and on a real evaluation of models that ignore their input."""
import pytest
import torch

from bench.records.health import OUTPUT_SPREAD_MIN, collapse_words, output_collapse, output_collapsed

HEALTHY = {"collapse/output_spread": 0.8, "test/mse": 0.008, "test/mean_image_mse": 0.067, "test/black_mse": 0.104}


@pytest.mark.parametrize("case, numbers", [
    ("a CIFAR-10 blob", {"collapse/output_spread": 0.054, "test/mse": 0.058, "test/mean_image_mse": 0.062}),
    ("coloured MNIST, no digits", {"collapse/output_spread": 0.168, "test/mse": 0.05, "test/mean_image_mse": 0.06}),
    ("worse than black", {"collapse/output_spread": 0.5, "test/mse": 0.180, "test/mean_image_mse": 0.065,
                          "test/black_mse": 0.104}),
    ("no better than the mean image", {"collapse/output_spread": 0.6, "test/mse": 0.055,
                                       "test/mean_image_mse": 0.065, "test/black_mse": 0.104}),
])
def test_a_run_whose_output_ignores_its_input_is_flagged_however_that_shows(case, numbers):
    assert output_collapse(numbers), case
    assert output_collapsed(numbers) and collapse_words(numbers).startswith("COLLAPSED"), case


def test_a_healthy_autoencoder_is_not_flagged():
    assert output_collapse(HEALTHY) is None and not output_collapsed(HEALTHY) and collapse_words(HEALTHY) is None


def test_the_printed_share_agrees_with_the_rule_at_the_threshold():
    just_under = dict(HEALTHY, **{"collapse/output_spread": OUTPUT_SPREAD_MIN - 0.0004})
    words = collapse_words(just_under)
    assert words and f"{OUTPUT_SPREAD_MIN:.1%}" not in words.split("(under")[0], words


class _Constant(torch.nn.Module):
    """Outputs `image` (plus a `follow` share of the input's difference from it) for every input."""
    task, noise_level, reconstructs = "reconstruct", 0.0, True

    def __init__(self, image, follow=0.0):
        super().__init__()
        self.image, self.follow = image, follow

    def forward(self, x, y=None):
        recon = self.image.expand_as(x) + self.follow * (x - self.image)
        return {"recon": recon, "loss": ((recon - x) ** 2).mean()}


@pytest.mark.parametrize("image, follow, flagged", [("mean", 0.1, True), ("black", 0.0, True), ("mean", 0.9, False)])
def test_the_test_evaluation_flags_a_model_that_outputs_a_blob_or_black(image, follow, flagged):
    from bench.config.spec import resolve
    from bench.data import load_data
    from bench.tasks.reconstruct import evaluate

    cfg = resolve({"dataset": "synthetic", "limit_train": 400, "limit_test": 100})
    data = load_data(cfg)
    mean = (data.train.x.float() / 255).mean(0, keepdim=True)
    model = _Constant(mean if image == "mean" else torch.zeros_like(mean), follow)
    model.train = lambda mode=True: model  # a stand-in without layers to switch
    model.eval = lambda: model
    res = evaluate(model, data, cfg, torch.device("cpu"))
    assert res["warning/output_collapsed"] is flagged, res
    assert res["test/mean_image_mse"] < res["test/black_mse"]
