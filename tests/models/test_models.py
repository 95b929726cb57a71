"""Every registered model, built from the registry: shapes, gradients, parameter counts,
and one property per family that breaks if the family is wired wrong."""
import re

import pytest
import torch

import registry
from bench.config.tasks import task
from bench.models.seg import dice_loss

MODELS = sorted(n for n, e in registry.MODELS.items() if not e.hidden)
SHAPES = [(1, 28, 28), (3, 32, 32), (3, 64, 64)]


def build(name, shape, **kw):
    extra = {"pretrained": False} if "pretrained" in registry.MODELS[name].config_keys() else {}
    return registry.create_model(name, shape, 10, **extra, **kw)


def target_for(model, x):
    """A random target batch of the model's task (None: the task's target is the input)."""
    return task(model.task).example_target(x, 10)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("shape", SHAPES + ["default"])
def test_forward_backward(name, shape):
    torch.manual_seed(0)
    shape = registry.MODELS[name].default_input if shape == "default" else shape
    model = build(name, shape).train()
    x = torch.rand(2, *shape)
    y = target_for(model, x)
    out = model(x, y)
    assert out["loss"].dim() == 0 and torch.isfinite(out["loss"])
    key, want = task(model.task).output(x, 10)  # what the model's task says its forward outputs
    assert out[key].shape == want
    if key == "recon":
        assert out["recon"].min() >= 0 and out["recon"].max() <= 1
    out["loss"].backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable
    for n, p in trainable:
        assert p.grad is not None, f"{name}: no gradient reaches {n}"
        assert torch.isfinite(p.grad).all(), n
    model.eval()
    z = model.encode(x)
    assert z.shape[0] == 2


def test_registry_listing_counts_are_true():
    text = registry.describe()
    for name in MODELS:
        m = re.search(rf"^\s+{name}\s+([\d,]+) params", text, re.M)
        assert m, f"{name} missing from the listing"
        model = build(name, None)
        true = torch.nn.utils.parameters_to_vector(model.parameters()).numel()
        assert int(m.group(1).replace(",", "")) == true
    for name in registry.DATASETS:
        assert re.search(rf"^\s+{name}\s", text, re.M)


def test_parameter_budgets_of_the_assignments():
    assert registry.count_params(build("pool_ae", (1, 28, 28))) <= 35_000
    assert registry.count_params(build("pool_ae", (3, 32, 32))) <= 35_000
    for name in ("linear_ae", "pool_ae", "cnn_classifier", "stl_ae", "seg_ae"):  # the CNN and autoencoder assignment's models
        entry = registry.MODELS[name]
        assert registry.count_params(build(name, entry.default_input)) <= 500_000, name
    n = registry.count_params(build("stl_ae", (3, 96, 96)))
    assert 150_000 <= n <= 250_000  # "about 200,000 parameters"


def test_linear_ae_is_the_seed_architecture():
    model = build("linear_ae", (1, 28, 28))
    dims = [m.out_features for m in model.encoder.modules() if isinstance(m, torch.nn.Linear)]
    assert dims == [128, 64, 32, 15]
    dims = [m.out_features for m in model.decoder.modules() if isinstance(m, torch.nn.Linear)]
    assert dims == [32, 64, 128, 784]


def test_mlp_vae_hidden_dims_make_the_four_layer_variant():
    model = build("mlp_vae", (1, 28, 28), hidden_dims=[400, 100], latent_dim=20)
    dims = [m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert dims == [400, 100, 20, 20, 100, 400, 784]


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_mcae_masks_requested_fraction_of_feature_cells(ratio):
    torch.manual_seed(0)
    model = build("mcae", (3, 32, 32), mask_ratio=ratio, mask_patch=2).train()
    model(torch.rand(16, 3, 32, 32))
    assert model.last_mask.shape == (16, 1, 16, 16)  # first feature map, not the image
    assert abs(model.last_mask.mean().item() - ratio) <= 0.05
    model.eval()
    model(torch.rand(4, 3, 32, 32))
    assert model.last_mask is None  # no masking at evaluation


def test_dice_loss_formula():
    t = (torch.rand(2, 1, 16, 16) > 0.5).float()
    assert dice_loss(t, t).item() == pytest.approx(0.0, abs=1e-6)
    assert dice_loss(t, 1 - t).item() == pytest.approx(1.0, abs=1e-6)
    p = torch.full_like(t, 0.5)
    expected = 1 - (2 * (p * t).sum() + 1e-6) / ((p ** 2).sum() + (t ** 2).sum() + 1e-6)
    assert dice_loss(p, t).item() == pytest.approx(expected.item())


def test_frozen_resnet_weights_do_not_change():
    torch.manual_seed(0)
    model = build("resnet18_probe", (3, 32, 32)).train()
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 1e-2)
    x, y = torch.rand(4, 3, 32, 32), torch.randint(0, 10, (4,))
    head_before = model.head.weight.clone()
    for _ in range(2):
        out = model(x, y)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, before[k]), f"backbone {k} changed"
    assert not torch.equal(model.head.weight, head_before)


def test_vae_kl_is_positive_and_warmup_scales_it():
    torch.manual_seed(0)
    model = build("vae", (1, 28, 28), kl_warmup_epochs=4).train()
    model.set_epoch(0, 10)
    out = model(torch.rand(8, 1, 28, 28))
    assert out["kl"].item() > 0
    assert out["beta_now"].item() == pytest.approx(0.25)
    model.set_epoch(5, 10)
    assert model(torch.rand(8, 1, 28, 28))["beta_now"].item() == pytest.approx(1.0)


def test_impossible_architecture_is_refused():
    from bench.core.errors import UsageError

    with pytest.raises(UsageError, match="at most"):
        build("ae", (1, 28, 28), channels=[8, 8, 8, 8, 8, 8])
    with pytest.raises(UsageError, match="too small"):
        build("pool_ae", (1, 16, 16))


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 64, 64)])
def test_fast_ssim_equals_torchmetrics(shape):
    from torchmetrics.functional.image import structural_similarity_index_measure

    from bench.measure.metrics import ssim

    torch.manual_seed(0)
    target = torch.rand(300, *shape)
    preds = (target + 0.2 * torch.randn_like(target)).clamp(0, 1)
    ref = structural_similarity_index_measure(preds, target, data_range=1.0, reduction="none")
    assert torch.allclose(ssim(preds, target), ref, atol=1e-5)
    assert torch.allclose(ssim(target, target), torch.ones(300), atol=1e-5)


def test_psnr_and_snr_are_torchmetrics_definitions():
    from torchmetrics.functional.audio import signal_noise_ratio
    from torchmetrics.functional.image import peak_signal_noise_ratio

    from bench.measure.metrics import image_metrics

    g = torch.Generator().manual_seed(1)
    target = torch.rand(50, 3, 16, 16, generator=g)
    preds = (target + 0.1 * torch.randn(target.shape, generator=g)).clamp(0, 1)
    m = image_metrics(preds, target)
    ref_psnr = peak_signal_noise_ratio(preds, target, data_range=1.0, reduction="none", dim=(1, 2, 3))
    ref_snr = signal_noise_ratio(preds.flatten(1), target.flatten(1), zero_mean=False)
    assert torch.allclose(m["psnr"], ref_psnr, atol=1e-4) and torch.allclose(m["snr"], ref_snr, atol=1e-4)
    assert m["psnr"].std() > 0  # per image, not one number broadcast


@pytest.mark.parametrize("n,nrow", [(16, 8), (7, 3), (2, 5)])
def test_image_grid_lays_out_as_torchvision(n, nrow):
    from torchvision.utils import make_grid

    from bench.core.tensors import image_grid

    imgs = torch.rand(n, 3, 9, 11, generator=torch.Generator().manual_seed(n))
    assert torch.equal(image_grid(imgs, nrow, padding=1, pad_value=0.5), make_grid(imgs, nrow, padding=1, pad_value=0.5))
    grey = image_grid(imgs[:, :1], nrow)
    assert grey.shape[0] == 1 and torch.equal(grey[0], make_grid(imgs[:, :1], nrow, padding=1)[0])


def _loss_at(name, shape, **keys):
    torch.manual_seed(0)  # the same weights, input, noise and masks for both values of a key
    model = build(name, shape, **keys).train()
    x = torch.rand(4, *shape)
    return model(x, target_for(model, x))


def _declared_weights():
    """(model, key, term) for every key a family declares as the weight of a loss term, for the
    models whose training forward returns that term (found on the meta device: no memory)."""
    from bench.config.keys import cli_keys

    out = []
    for name in MODELS:
        entry = registry.MODELS[name]
        terms = registry.forward_terms(entry, entry.default_input, 10) or set()
        out += [(name, key, f.metadata["weighs"]) for key, f in cli_keys(entry.config_cls).items()
                if f.metadata.get("weighs") in terms]
    return out


WEIGHTS = _declared_weights()


def test_every_declared_weight_has_a_model_that_returns_its_term():
    """A key declared as a loss weight is exercised below by at least one model: a family
    whose models never return the term they weigh would otherwise go unchecked."""
    from bench.config.keys import cli_keys

    declared = {(f.metadata["weighs"], key) for e in registry.MODELS.values()
                for key, f in cli_keys(e.config_cls).items() if f.metadata.get("weighs")}
    assert declared and declared == {(term, key) for _, key, term in WEIGHTS}


@pytest.mark.parametrize("name,key,term", WEIGHTS, ids=[f"{n}-{k}" for n, k, _ in WEIGHTS])
def test_every_declared_loss_term_changes_the_loss(name, key, term):
    """Generated from the families' declarations: a key that weighs a loss term (`weighs=`)
    changes the training loss of every model whose forward returns that term. A family that
    ignored its weight (a sparse AE without its L1 penalty, a VAE without its KL) fails here."""
    shape = registry.MODELS[name].default_input
    base = _loss_at(name, shape)
    default = getattr(registry.MODELS[name].config(), key)
    other = _loss_at(name, shape, **{key: default * 3 + 0.5})
    # not 0 (a single-sample KL estimate, the VampPrior's, may be negative on one batch)
    assert float(base[term]) != 0, f"{name}: the term {term} is 0 at the test input"
    assert not torch.isclose(base["loss"], other["loss"]), f"{name}: --{key} does not change the loss"
