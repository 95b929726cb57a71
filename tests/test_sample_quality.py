"""The sample-quality score: one deterministic, cached feature network per dataset, and a
Frechet distance that ranks known degradations the same way every time."""
import pytest
import torch

from conftest import needs_fashion


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    from bench.config import resolve
    from bench.data import load_data

    root = needs_fashion() or str(tmp_path_factory.mktemp("data"))
    return load_data(resolve({"dataset": "fashion_mnist", "data_root": root, "limit_train": 2000, "seed": 0}))


@pytest.mark.slow
def test_feature_network_is_deterministic_cached_and_named(fashion, tmp_path, monkeypatch):
    from bench.sample_quality import cache_dir, feature_network

    device = torch.device("cpu")
    x = fashion.test.x[:64].float() / 255
    monkeypatch.setenv("AEBENCH_CACHE", str(tmp_path / "a"))
    first = feature_network(fashion, device)
    assert len(list(cache_dir().glob("*.pt"))) == 1 and first.identity.startswith("fashion_mnist-1x28x28-n1800-")
    again = feature_network(fashion, device)  # from the cache
    monkeypatch.setenv("AEBENCH_CACHE", str(tmp_path / "b"))
    retrained = feature_network(fashion, device)  # trained again from scratch
    with torch.no_grad():
        assert torch.equal(first(x), again(x)) and torch.equal(first(x), retrained(x))
    assert first.identity == again.identity == retrained.identity


@pytest.mark.slow
def test_frechet_distance_ranks_reference_degradations(fashion):
    from torchvision.transforms.functional import gaussian_blur

    import registry
    from bench.sample_quality import feature_network, frechet

    features = feature_network(fashion, torch.device("cpu"))
    real, other = fashion.test.x[:1000].float() / 255, fashion.test.x[1000:2000].float() / 255
    g = torch.Generator().manual_seed(0)
    noisy = (other + 0.1 * torch.randn(other.shape, generator=g)).clamp(0, 1)
    blurred = gaussian_blur(other, [5, 5], [1.5, 1.5])
    torch.manual_seed(0)
    with torch.no_grad():
        untrained = registry.create_model("ae", (1, 28, 28), 10).decode(torch.randn(1000, 64))
    scores = [frechet(features, real, x) for x in (other, noisy, blurred, untrained)]
    assert scores == sorted(scores) and len(set(scores)) == 4, scores  # real < noised < blurred < untrained
