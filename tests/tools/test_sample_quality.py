"""The sample-quality score: three deterministic, cached feature networks per dataset (every
attribute of an attribute dataset), and a Frechet distance that ranks known degradations the
same way every time."""
import pytest
import torch
from conftest import needs_fashion


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    from bench.config.spec import resolve
    from bench.data import load_data

    root = needs_fashion() or str(tmp_path_factory.mktemp("data"))
    return load_data(resolve({"dataset": "fashion_mnist", "data_root": root, "limit_train": 2000, "seed": 0}))


@pytest.mark.slow(reason="trains Fashion-MNIST's feature networks twice, unshipped")
def test_feature_network_is_deterministic_cached_and_named(fashion, tmp_path, monkeypatch):
    from bench.tools import _features
    from bench.tools._features import cache_dir, feature_networks

    # Training is seeded whatever its length and however many seeds: two networks of one epoch
    # each show it at a ninth of the recipe's cost (the names still say the recipe's).
    monkeypatch.setattr(_features, "FEATURE_SEEDS", (0, 1))
    monkeypatch.setattr(_features, "FEATURE_EPOCHS", 1)
    device = torch.device("cpu")
    x = fashion.test.x[:64].float() / 255
    monkeypatch.setenv("AEBENCH_CACHE", str(tmp_path / "a"))
    first = feature_networks(fashion, device, shipped=False)  # the recipe's code, shortened
    assert len(list(cache_dir().glob("*.pt"))) == len(first.members) == 2
    assert first.identity.startswith("fashion_mnist-1x28x28-n1800-classes10-") and first.identity.endswith("-s0.1")
    again = feature_networks(fashion, device, shipped=False)  # from the cache
    monkeypatch.setenv("AEBENCH_CACHE", str(tmp_path / "b"))
    retrained = feature_networks(fashion, device, shipped=False)  # trained again from scratch
    with torch.no_grad():
        for a, b, c in zip(first.members, again.members, retrained.members):
            assert torch.equal(a(x), b(x)) and torch.equal(a(x), c(x))
        assert not torch.equal(first.members[0](x), first.members[1](x))  # other seeds, other networks
    assert first.identity == again.identity == retrained.identity


@pytest.mark.slow(reason="real Fashion-MNIST, four degraded copies of 1,000 test images scored with bootstrap intervals")
def test_frechet_distance_ranks_reference_degradations(fashion):
    from torchvision.transforms.functional import gaussian_blur

    import registry
    from bench.tools._features import feature_networks
    from bench.tools._scores import frechet

    features = feature_networks(fashion, torch.device("cpu"))
    real, other = fashion.test.x[:1000].float() / 255, fashion.test.x[1000:2000].float() / 255
    g = torch.Generator().manual_seed(0)
    noisy = (other + 0.1 * torch.randn(other.shape, generator=g)).clamp(0, 1)
    blurred = gaussian_blur(other, [5, 5], [1.5, 1.5])
    torch.manual_seed(0)
    with torch.no_grad():
        untrained = registry.create_model("ae", (1, 28, 28), 10).decode(torch.randn(1000, 64))
    scores = [frechet(features, real, x) for x in (other, noisy, blurred, untrained)]
    assert scores == sorted(scores) and len(set(scores)) == 4, scores  # real < noised < blurred < untrained


@pytest.mark.slow(reason="trains feature networks on CelebA-format attribute files")
def test_on_an_attribute_dataset_the_networks_learn_all_the_attributes_at_once(tmp_path, monkeypatch):
    """CelebA: the networks are trained multi-label on all 40 attributes (one attribute, Smiling,
    left features that could not tell samplers apart), and predict them on unseen faces: here
    Smiling, the one these tiny faces show clearly, among 39 random ones."""
    import torchvision
    from formats import trust_files, write_celeba

    from bench.config.spec import resolve
    from bench.data import load_data
    from bench.tools import _features as sample_quality

    monkeypatch.setenv("AEBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(sample_quality, "FEATURE_SEEDS", (0,))  # one network: the three are tested above
    monkeypatch.setattr(sample_quality, "FEATURE_EPOCHS", 20)  # 270 faces: more passes than the recipe's
    base, _ = write_celeba(tmp_path, n=450)
    trust_files(monkeypatch, torchvision.datasets.CelebA, base)
    data = load_data(resolve({"dataset": "celeba", "data_root": str(tmp_path), "limit_train": 300,
                              "limit_test": 150, "seed": 0}))
    nets = sample_quality.feature_networks(data, torch.device("cpu"))
    (net,) = nets.members
    assert "-attrs40-" in nets.identity and net.clf.head.out_features == 40
    with torch.no_grad():
        right = ((net.clf.head(net(data.test.x.float() / 255)) > 0) == data.test.attrs.bool()).float().mean(0)
    assert right[data.attr_names.index("Smiling")] > 0.9, right


def test_inception_asked_offline_falls_back_to_the_small_networks_in_one_line(tmp_path, monkeypatch, capsys):
    """No weights in the cache and no network: the run says so in one line, scores with the
    dataset's small networks, and its record says which space its numbers are in."""
    from conftest import only_run, quick, run_inproc

    from bench.tools._inception import weights_path

    monkeypatch.setenv("AEBENCH_OFFLINE", "1")
    assert not weights_path().exists()
    assert run_inproc(quick(tmp_path, "--eval", "sample", "--sample-score", "inception", model="vae", epochs=1)) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "--sample-score inception" in line]
    assert len(lines) == 1 and "offline" in lines[0] and "small networks instead" in lines[0], lines
    s = only_run(tmp_path).read_summary()
    assert s["sample/score_space"] == "small" and "offline" in s["sample/score_fallback"]
    assert s["sample/fd_features"].startswith("synthetic-shipped-") and s["sample/gmm_fd"] > 0  # the small networks


@pytest.mark.slow(reason="InceptionV3 (torchmetrics' own) over real-size images, on the CPU")
def test_inception_fid_runs_torchmetrics_own_inceptionv3_with_stand_in_weights(tmp_path, monkeypatch):
    """The `inception` path through the real torchmetrics and torch-fidelity code: only the
    weights are a stand-in (the InceptionV3 of torch-fidelity, randomly initialised, saved where
    the fetched file would be), so nothing is downloaded."""
    import torch_fidelity.feature_extractor_inceptionv3 as tf
    from conftest import only_run, quick, run_inproc

    from bench.tools._inception import weights_path

    monkeypatch.setenv("AEBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("AEBENCH_OFFLINE", "1")
    from bench.tools import _scores
    monkeypatch.setattr(_scores, "RESAMPLES_WIDE", 2)  # each draw is a 2048-dim matrix square root: the path is
    #                                                   # under test here, the interval's draws are tested below
    with monkeypatch.context() as m:  # build the architecture without its download
        m.setattr(tf, "load_state_dict_from_url", lambda *a, **k: {})
        m.setattr(tf.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state, *a, **k: None)
        net = tf.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    weights_path().parent.mkdir(parents=True)
    torch.save(net.state_dict(), weights_path())
    args = quick(tmp_path, "--eval", "sample", "--sample-score", "inception", "--limit-test", 24, model="vae",
                 epochs=1)
    assert run_inproc(args) == 0
    s = only_run(tmp_path).read_summary()
    assert s["sample/score_space"] == "inception" and "sample/score_fallback" not in s
    assert s["sample/fd_features"] == "inception-v3-fid2048-6726825d"
    assert all(s[f"sample/{k}_fd"] >= 0 for k in ("prior", "ex_post", "gmm"))


class _Identity:
    """A feature space whose features are the 'images' themselves, (N, d, 1, 1) in [0, 1]."""

    class metric_:
        normalize, used_custom_model = False, True

        @staticmethod
        def inception(x):
            return x.flatten(1)

    def metric(self, real):
        return self.metric_

    @staticmethod
    def prepare(x):
        return x


class _Space:
    members = [_Identity()]


def _draw(n, shift, d=16):
    return torch.distributions.Beta(2.0, 3.0 + shift).sample((n, d, 1, 1))


def test_the_fd_interval_covers_the_fd_of_a_larger_sample_in_most_repeats():
    """A finite sample's FD lies above the distributions'; the basic bootstrap interval of 500
    images still covers the FD of 5,000 in most of 20 repeats."""
    from bench.tools._scores import score_each

    torch.manual_seed(0)
    truth = score_each(_Space, _draw(5000, 0), {"f": _draw(5000, 1.0)})["f"].fd
    covered = 0
    for rep in range(20):
        torch.manual_seed(rep + 1)
        s = score_each(_Space, _draw(500, 0), {"f": _draw(500, 1.0)}, seed=rep)["f"]
        assert 0 <= s.lo < s.hi <= 2 * s.fd  # about the distributions' FD, below a finite sample's biased one
        covered += s.lo <= truth <= s.hi
    assert covered >= 14, covered


def test_the_fd_interval_is_scipys_basic_bootstrap_interval():
    """On a fixed pair of samples and a two-sample statistic (the difference of means), the
    project's basic interval agrees with `scipy.stats.bootstrap(method="basic")` to within a
    tenth of the interval's width (the draws differ, the interval they estimate does not)."""
    import numpy as np
    from scipy.stats import bootstrap

    from bench.tools._scores import basic_interval, resamples

    rng = np.random.default_rng(0)
    a, b = rng.normal(0.0, 1.0, 400), rng.normal(0.5, 2.0, 300)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    value = float(b.mean() - a.mean())
    i, j = resamples(len(a), len(b), 4000, torch.Generator().manual_seed(0))
    ours = basic_interval(tb[j].mean(1) - ta[i].mean(1), value)
    theirs = bootstrap((a, b), lambda x, y: y.mean() - x.mean(), method="basic", n_resamples=4000,
                       vectorized=False, paired=False, random_state=1).confidence_interval
    width = theirs.high - theirs.low
    assert abs(ours[0] - theirs.low) < 0.1 * width and abs(ours[1] - theirs.high) < 0.1 * width, (ours, theirs)
    assert ours[0] < value < ours[1]


def test_kid_is_near_zero_for_the_same_distribution_and_has_a_spread():
    from bench.tools._scores import score_each

    torch.manual_seed(0)
    real = _draw(800, 0)
    scores = score_each(_Space, real, {"same": _draw(800, 0), "other": _draw(800, 1.0)})
    same, other = scores["same"], scores["other"]
    assert abs(same.kid) < 3 * same.kid_std + 1e-4 and other.kid > 10 * max(same.kid, same.kid_std)
    assert other.kid_std > 0 and same.hi >= same.lo >= 0
    assert not (same.lo <= other.hi and other.lo <= same.hi)  # told apart


def test_a_report_says_which_samplers_its_samples_do_not_tell_apart():
    import pandas as pd

    from analysis.page import untold_note

    frame = pd.DataFrame([{"sample/prior_fd_lo": 10.0, "sample/prior_fd_hi": 12.0, "sample/gmm_fd_lo": lo,
                           "sample/gmm_fd_hi": lo + 2.0} for lo in (11.0, 20.0, 11.5)])
    assert untold_note(frame) == ("The 95% intervals of sample FD (bootstrap over the scored images) overlap for gmm "
                                  "and prior in 2 of 3 runs: those samplers are not told apart by these samples")


def test_mnist_and_fashion_scores_use_the_shipped_networks_the_same_on_every_machine(fashion, tmp_path, monkeypatch):
    """No network is trained: the shipped files are loaded (two empty caches give bit-identical
    scores), and nothing is written to the cache."""
    from bench.tools._features import cache_dir, feature_networks
    from bench.tools._scores import score_each

    real, fake = fashion.test.x[:200].float() / 255, fashion.test.x[200:400].float().flip(-1) / 255
    scores = []
    for cache in ("a", "b"):
        monkeypatch.setenv("AEBENCH_CACHE", str(tmp_path / cache))
        space = feature_networks(fashion, torch.device("cpu"))
        assert space.identity.startswith("fashion_mnist-shipped-cnn16-32-64-") and len(space.members) == 3
        scores.append(score_each(space, real, {"flipped": fake})["flipped"])
        assert not cache_dir().exists() or not list(cache_dir().glob("*.pt"))
    assert scores[0] == scores[1] and scores[0].fd > 0


def test_a_shipped_network_that_does_not_match_its_hash_is_refused(fashion, tmp_path, monkeypatch):
    import shutil

    from bench.core.errors import UsageError
    from bench.tools import _features as sample_quality

    copy = tmp_path / "bench" / "tools" / "feature_nets"
    shutil.copytree(sample_quality.SHIPPED, copy)
    data = bytearray((copy / "fashion_mnist-s1.pt").read_bytes())
    data[-100] ^= 0xFF
    (copy / "fashion_mnist-s1.pt").write_bytes(bytes(data))
    monkeypatch.setattr(sample_quality, "SHIPPED", copy)
    with pytest.raises(UsageError, match=r"fashion_mnist-s1.pt does not match the SHA-256"):
        sample_quality.feature_networks(fashion, torch.device("cpu"))


def test_each_resamples_distance_is_the_distance_of_its_rows(monkeypatch):
    """The bootstrap's moments from draw counts give each resample the Frechet distance that
    `frechet_distance` gives its resampled rows: narrow features by one matrix product (rows
    far from zero, more rows than dims and fewer), wide ones one resample at a time."""
    from bench.tools import _scores

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    for n_a, n_b, d in ((300, 250, 16), (40, 50, 64)):
        a, b = torch.rand(n_a, d, dtype=torch.float64) ** 2 + 3, torch.rand(n_b, d, dtype=torch.float64)
        ia, ib = _scores.resamples(n_a, n_b, 5, g)
        each = [_scores.frechet_distance(a[i], b[j]) for i, j in zip(ia, ib)]
        assert len(set(each)) == 5
        assert _scores.resampled_distances(a, b, ia, ib).tolist() == pytest.approx(each, rel=1e-6)
        monkeypatch.setattr(_scores, "MOMENTS_MAX", 0)  # as for Inception's 2,048 dims
        assert _scores.resampled_distances(a, b, ia, ib).tolist() == each
        monkeypatch.undo()


def test_the_fast_fd_and_kid_equal_torchmetrics_own_formulas():
    from torchmetrics.image.fid import _compute_fid
    from torchmetrics.image.kid import poly_mmd

    from bench.tools import _scores as sample_scores

    torch.manual_seed(0)
    a, b = torch.rand(600, 32, dtype=torch.float64) ** 2, torch.rand(500, 32, dtype=torch.float64) ** 1.5
    ours = sample_scores.frechet_distance(a, b)
    theirs = float(_compute_fid(a.mean(0), torch.cov(a.T), b.mean(0), torch.cov(b.T)))
    assert ours == pytest.approx(theirs, rel=1e-6, abs=1e-9)
    g = torch.Generator().manual_seed(3)
    mean, std = sample_scores.kid(a, b, g)
    g = torch.Generator().manual_seed(3)  # the same subsets through torchmetrics' own poly_mmd
    m = min(sample_scores.KID_SUBSET_SIZE, 250)
    values = []
    for _ in range(sample_scores.KID_SUBSETS):
        i, j = torch.randperm(600, generator=g)[:m], torch.randperm(500, generator=g)[:m]
        values.append(float(poly_mmd(a[i], b[j])))
    assert mean == pytest.approx(sum(values) / len(values), rel=1e-6) and std == pytest.approx(
        float(torch.tensor(values).std()), rel=1e-4)


def test_feature_networks_are_never_trained_on_fewer_images_than_their_recipe(tmp_path, monkeypatch):
    """A CelebA copy of 60 faces, run on 40: the networks' recipe asks for the whole training
    split (up to 20,000 images), which cannot be read, so the sample tool refuses in one line
    naming how many it needs, and trains nothing; the run itself finishes."""
    import torchvision
    from conftest import only_run, run_inproc
    from formats import trust_files, write_celeba

    from bench.tools._features import cache_dir

    monkeypatch.setenv("AEBENCH_CACHE", str(tmp_path / "cache"))
    base, _ = write_celeba(tmp_path, n=60)
    trust_files(monkeypatch, torchvision.datasets.CelebA, base)
    assert run_inproc(["--model", "ae", "--dataset", "celeba", "--data-root", tmp_path, "--limit-train", 40,
                       "--limit-test", 20, "--epochs", 1, "--eval", "sample", "--runs-dir", tmp_path / "runs",
                       "--wandb", "disabled"]) == 0
    s = only_run(tmp_path).read_summary()
    why = s["sample/skipped"]
    assert "20,000" in why and "only the run's 36" in why and "--sample-score inception" in why, why
    assert "sample/gmm_fd" not in s and not list(cache_dir().glob("*.pt"))


def _trained_ae(dataset: str, root: str, tmp_path):
    """A conv AE trained for 5 epochs on 10,000 images (PSNR about 18.6 dB): a good model at this scale."""
    from bench.api import load, train

    rec = train(model="ae", dataset=dataset, data_root=root, epochs=5, limit_train=10000, limit_test=500,
                latent_dim=16, batchnorm=True, runs_dir=str(tmp_path / "runs"), wandb="disabled")
    assert rec["status"] == "finished" and rec["summary"]["test/psnr"] > 18, rec["summary"]
    return load(rec["run_dir"])[0]


@pytest.mark.slow(reason="a conv AE trained on real MNIST / Fashion-MNIST, then 2,000 samples scored")
@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_the_score_tells_real_from_good_samples_from_trivial_ones(dataset, tmp_path, mnist_root):
    """In the shipped networks: other real test images score far lower than a good model's GMM
    samples, and those far lower than uniform noise, the training set's mean image repeated, or a
    collapsed model's output (one decoded image for every code). The old networks scored a
    constant image as well as real samples."""
    import numpy as np

    from bench.config.spec import resolve
    from bench.data import load_data
    from bench.tools._features import feature_networks
    from bench.tools._latent import codes
    from bench.tools._samplers import GMMSampler
    from bench.tools._scores import score_each

    root = mnist_root if dataset == "mnist" else needs_fashion()
    if root is None:
        pytest.skip("real Fashion-MNIST not present")
    model = _trained_ae(dataset, root, tmp_path)
    data = load_data(resolve({"dataset": dataset, "data_root": root, "limit_train": 10000, "limit_test": 2000}))
    real, other = data.test.x[:1000].float() / 255, data.test.x[1000:].float() / 255
    z = torch.from_numpy(GMMSampler(10, seed=0).fit(codes(model, data.train, torch.device("cpu")))
                         .sample(1000, np.random.default_rng(0))).float()
    with torch.no_grad():
        good = model.decode(z).clamp(0, 1)
        collapsed = model.decode(z.mean(0, keepdim=True)).clamp(0, 1).expand(1000, -1, -1, -1)
    mean = (data.train.x.float().mean(0, keepdim=True) / 255).expand(1000, -1, -1, -1)
    noise = torch.rand(other.shape, generator=torch.Generator().manual_seed(0))
    s = score_each(feature_networks(data, torch.device("cpu")), real,
                   {"real": other, "good": good, "noise": noise, "mean": mean, "collapsed": collapsed})
    assert s["real"].hi * 10 < s["good"].lo, s
    for trivial in ("noise", "mean", "collapsed"):
        assert s["good"].hi * 3 < s[trivial].lo, (trivial, s)
