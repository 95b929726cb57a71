"""Latent samplers: where generated codes come from, as objects with `fit` then `sample`
(as pythae's samplers): the VAE prior, an ex-post Gaussian and an ex-post Gaussian mixture
fitted to training codes (Ghosh et al., arXiv 1903.12436: any autoencoder becomes a
generator this way). Plain numpy and scikit-learn, usable from a notebook:

    from bench.tools._latent import codes
    from bench.tools._samplers import GMMSampler
    z = GMMSampler(10).fit(codes(model, data.train, device)).sample(64)
    images = model.decode(torch.from_numpy(z).float())
"""
from __future__ import annotations

import numpy as np


class Sampler:
    """`fit(codes)` on an (N, d) array of training codes, then `sample(n)` -> (n, d) codes."""

    dim: int | None = None

    def fit(self, codes: np.ndarray) -> "Sampler":
        self.dim = codes.shape[1]
        return self

    def sample(self, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        raise NotImplementedError

    def _check(self):
        if self.dim is None:
            raise RuntimeError(f"{type(self).__name__}: call fit(codes) before sample(n)")


class PriorSampler(Sampler):
    """The VAE prior: N(0, I), or the model's own prior where it has a learned one (`draw(n,
    rng)`, e.g. a VampPrior's `prior_codes`); `fit` only reads the code size."""

    def __init__(self, draw=None):
        self.draw = draw

    def sample(self, n, rng=None):
        self._check()
        rng = rng or np.random.default_rng()
        return self.draw(n, rng) if self.draw is not None else rng.standard_normal((n, self.dim))


class GaussianSampler(Sampler):
    """One Gaussian with the codes' mean and full covariance (ex-post density estimation)."""

    def __init__(self, eps: float = 1e-6):
        self.eps = eps

    def fit(self, codes):
        super().fit(codes)
        self.mean = codes.mean(0)
        self.cov = np.cov(codes, rowvar=False) + self.eps * np.eye(self.dim)
        return self

    def sample(self, n, rng=None):
        self._check()
        return (rng or np.random.default_rng()).multivariate_normal(self.mean, self.cov, n)


class GMMSampler(Sampler):
    """A Gaussian mixture (full covariances) fitted to the codes; at most one component per code."""

    def __init__(self, n_components: int = 10, seed: int = 0, reg_covar: float = 1e-5):
        self.n_components, self.seed, self.reg_covar = n_components, seed, reg_covar

    def fit(self, codes):
        from sklearn.mixture import GaussianMixture

        super().fit(codes)
        self.gmm = GaussianMixture(n_components=min(self.n_components, len(codes)), covariance_type="full",
                                   reg_covar=self.reg_covar, random_state=self.seed).fit(codes)
        return self

    def sample(self, n, rng=None):
        """Draws in random order (scikit-learn returns them grouped by component)."""
        self._check()
        return self.gmm.sample(n)[0][(rng or np.random.default_rng()).permutation(n)]
