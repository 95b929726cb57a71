"""Regularised autoencoder, `rae` (Ghosh, Sajjadi, Vergari, Black and Schoelkopf, "From
Variational to Deterministic Autoencoders", ICLR 2020, arXiv 1903.12436).

A deterministic conv autoencoder whose code is kept small and whose decoder is kept smooth,
so that codes drawn from a density fitted to the training codes after training (ex-post
density estimation: the sample tool's Gaussian and 10-component GMM) decode to images. The
loss per image is the squared error summed over pixels, plus `z_lambda` * ||z||^2 / 2 (the
paper's L_z), plus a regulariser of the decoder: `rae_reg l2` (RAE-L2, the default)
`dec_lambda` * the sum of the decoder's squared weights, or `rae_reg gp` (RAE-GP)
`dec_lambda` * the squared norm of the decoder's gradient with respect to z. Its diagnostic
is the paper's claim: its ex-post GMM samples beat a VAE's prior samples in the sample score
(a test on MNIST at small scale). It logs `z_norm` (the L_z term) and `dec_reg`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.config.keys import BATCHNORM, CHANNELS, LATENT_DIM, Corruption, ImageInput, key
from bench.models.base import LinearCodeAE
from registry import register_model


@dataclass
class RAEConfig(ImageInput, Corruption):
    """regularised deterministic autoencoder (rae)"""
    channels: list[int] = key((32, 64, 128), **CHANNELS)
    latent_dim: int = key(16, **LATENT_DIM)
    batchnorm: bool = key(False, **BATCHNORM)
    z_lambda: float = key(1.0, "weight of ||z||^2 / 2 in the RAE loss (the paper's beta, L_z)", lo=0.0, hi=1e4,
                          weighs="z_norm")
    rae_reg: str = key("l2", "decoder regulariser: l2 (weight decay of the decoder, RAE-L2) or gp (gradient "
                       "penalty on the decoder, RAE-GP)", choices=["l2", "gp"])
    dec_lambda: float = key(1e-3, "weight of the decoder regulariser in the RAE loss", lo=0.0, hi=1e4,
                            weighs="dec_reg")


class RAE(LinearCodeAE):
    def __init__(self, cfg: RAEConfig):
        super().__init__(cfg, "rae")

    def _decoder_reg(self, z) -> torch.Tensor:
        if self.cfg.rae_reg == "l2":
            return sum(p.pow(2).sum() for n, p in self.named_parameters() if n.startswith(("from_z", "decoder"))
                       and n.endswith("weight"))
        training = torch.is_grad_enabled()
        with torch.enable_grad():  # in evaluation too, so that val/dec_reg is the same quantity
            z = z.detach().requires_grad_(True)
            grad, = torch.autograd.grad(self.decode(z).sum(), z, create_graph=training)
        return grad.pow(2).sum(1).mean()

    def forward(self, x, y=None):
        z = self.encode(self.model_input(x))
        recon = self.decode(z)
        rec = (recon - x).pow(2).flatten(1).sum(1).mean()
        z_norm = 0.5 * z.pow(2).sum(1).mean()
        reg = self._decoder_reg(z) if self.cfg.dec_lambda > 0 else z.new_zeros(())
        loss = rec + self.cfg.z_lambda * z_norm + self.cfg.dec_lambda * reg
        return {"loss": loss, "recon": recon, "z": z, "recon_loss": rec.detach(), "z_norm": z_norm.detach(),
                "dec_reg": reg.detach(), "mse": F.mse_loss(recon.detach(), x)}


@register_model(config=RAEConfig)
def rae(cfg):
    """RAE (Ghosh et al. 2020): deterministic AE, ||z||^2 and a smooth decoder; sampled ex post by a GMM."""
    return RAE(cfg)
