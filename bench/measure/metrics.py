"""Batched test-set metrics: reconstruction (MSE, MAE, PSNR, SSIM, SNR), accuracy, Dice/IoU.

Every image metric is computed per image on whole batches, with torchmetrics' definitions
(PSNR and SNR written out, SSIM with a separable window; tests hold them equal to
torchmetrics) and averaged over the split. PSNR and SSIM use data_range 1.0; SNR follows the coloured-MNIST assignment:
10 log10(sum x^2 / sum (x - x_hat)^2) per image, in dB (torchmetrics' signal_noise_ratio
over the flattened image with zero_mean=False).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.core.tensors import autocast, corrupt, prepare
from bench.data import batches

SSIM_SIGMA, SSIM_KERNEL = 1.5, 11


def ssim(preds: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, chunk: int = 128) -> torch.Tensor:
    """Per-image SSIM, numerically torchmetrics' `structural_similarity_index_measure`
    (Gaussian window 11, sigma 1.5, k1 0.01, k2 0.03, reflect padding, mean over the
    image), with the separable Gaussian applied as two banded matrix products, which on
    CPU is several times faster than torchmetrics' grouped 11x11 convolution. Chunks of
    `chunk` images keep the five stacked moment maps in cache."""
    if preds.shape[0] > chunk:
        return torch.cat([ssim(p, t, data_range, chunk) for p, t in zip(preds.split(chunk), target.split(chunk))])
    pad = (SSIM_KERNEL - 1) // 2
    x = torch.arange(SSIM_KERNEL, dtype=preds.dtype, device=preds.device) - pad
    g = torch.exp(-(x ** 2) / (2 * SSIM_SIGMA ** 2))
    g = g / g.sum()

    def band(n):  # (n + 2 pad, n): column i holds the window centred on padded pixel i + pad
        m = torch.zeros(n + 2 * pad, n, dtype=preds.dtype, device=preds.device)
        for k in range(SSIM_KERNEL):
            m[torch.arange(n) + k, torch.arange(n)] = g[k]
        return m

    h, w = preds.shape[-2:]
    bh, bw = band(h), band(w)
    p = F.pad(preds, (pad, pad, pad, pad), mode="reflect")
    t = F.pad(target, (pad, pad, pad, pad), mode="reflect")
    stacked = torch.cat((p, t, p * p, t * t, p * t))
    out = bh.t() @ (stacked @ bw)  # blur along W, then along H
    mu_p, mu_t, e_pp, e_tt, e_pt = out.split(preds.shape[0])
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    var_p = (e_pp - mu_p ** 2).clamp(min=0.0)
    var_t = (e_tt - mu_t ** 2).clamp(min=0.0)
    cov = e_pt - mu_p * mu_t
    idx = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p ** 2 + mu_t ** 2 + c1) * (var_p + var_t + c2))
    return idx.flatten(1).mean(1)


def image_metrics(recon: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image metrics, each a (B,) tensor."""
    # PSNR and SNR are torchmetrics' definitions written out (tests compare them): importing
    # torchmetrics costs about 1 s of start-up (it pulls in scipy.signal) for two one-liners.
    recon, target = recon.float().clamp(0, 1), target.float()
    err = recon - target
    sq = err.pow(2).flatten(1)
    mse = sq.mean(1)
    out = {"mse": mse, "mae": err.abs().flatten(1).mean(1)}
    psnr = 10 * torch.log10(1.0 / mse)  # data_range 1
    out["psnr"] = torch.where(mse > 0, psnr, torch.full_like(mse, 100.0))  # perfect copy: cap
    if min(target.shape[-2:]) >= 11:
        out["ssim"] = ssim(recon, target)
    eps = torch.finfo(target.dtype).eps
    out["snr"] = 10 * torch.log10((target.flatten(1).pow(2).sum(1) + eps) / (sq.sum(1) + eps))
    return out


class Mean:
    """Running means of per-image tensors, kept on the device until read."""

    def __init__(self):
        self.sums, self.n = {}, 0

    def add(self, values: dict[str, torch.Tensor]):
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v.detach().float().sum()
        self.n += next(iter(values.values())).shape[0]

    def result(self, prefix="") -> dict[str, float]:
        return {f"{prefix}{k}": (v / max(self.n, 1)).item() for k, v in self.sums.items()}


@torch.no_grad()
def reconstruction(model, split, device, batch_size=500, sigma=0.0, noise_type="gaussian", seed=0,
                   amp="off", channels_last=False, with_input=False) -> dict[str, float]:
    """Metrics of model(corrupt(x)) against clean x; noise is fixed by seed.

    with_input also scores the corrupted input itself (`input_psnr` ...), the
    do-nothing baseline a denoiser must beat.
    """
    model.eval()
    g = torch.Generator(device=device).manual_seed(seed)
    rec, inp = Mean(), Mean()
    for x, _ in batches(split, batch_size):
        x = x.to(device)
        noisy = corrupt(x, sigma, noise_type, g) if sigma > 0 else x
        with autocast(device, amp):
            out = model(prepare(noisy, channels_last))
        rec.add(image_metrics(out["recon"], x))
        if with_input:
            inp.add(image_metrics(noisy, x))
    res = rec.result()
    if with_input:
        res.update(inp.result("input_"))
    return res


@torch.no_grad()
def trivial_baselines(train, test, device, batch_size=500) -> dict[str, float]:
    """The test MSE of images that ignore their input: the training set's mean image for every
    test image (`mean_image_mse`), and an all-black image (`black_mse`). A reconstruction no better
    than these has not used its input (`bench.records.health`)."""
    total, n = None, 0
    for x, _ in batches(train, batch_size):
        x = x.to(device).float()
        total = x.sum(0) if total is None else total + x.sum(0)
        n += len(x)
    mean = total / max(n, 1)
    to_mean, to_black = Mean(), Mean()
    for x, _ in batches(test, batch_size):
        x = x.to(device).float()
        to_mean.add({"mse": ((x - mean) ** 2).flatten(1).mean(1)})
        to_black.add({"mse": (x ** 2).flatten(1).mean(1)})
    return {"mean_image_mse": to_mean.result()["mse"], "black_mse": to_black.result()["mse"]}


@torch.no_grad()
def _labelled(model, split, device, batch_size, amp, channels_last, score) -> dict[str, float]:
    """Mean over a split of per-image scores `score(logits, y)` of a model fed (x, y)."""
    model.eval()
    m = Mean()
    for x, y in batches(split, batch_size):
        x, y = prepare(x.to(device), channels_last), y.to(device)
        with autocast(device, amp):
            out = model(x, y)
        m.add(score(out["logits"].float(), y))
    return m.result()


def classification(model, split, device, batch_size=500, amp="off", channels_last=False) -> dict[str, float]:
    def score(logits, y):
        return {"acc": (logits.argmax(1) == y).float(),
                "loss": torch.nn.functional.cross_entropy(logits, y, reduction="none")}
    return _labelled(model, split, device, batch_size, amp, channels_last, score)


def segmentation(model, split, device, batch_size=64, amp="off", channels_last=False) -> dict[str, float]:

    def score(logits, y):
        dice, iou = dice_iou(logits, y.float())
        # the share of each image predicted as foreground, and the true share: a model that marks
        # every pixel (or none) scores a Dice of its own, the same whatever loss trained it
        return {"dice": dice, "iou": iou, "pred_area": (torch.sigmoid(logits) > 0.5).flatten(1).float().mean(1),
                "true_area": (y > 0.5).flatten(1).float().mean(1)}
    return _labelled(model, split, device, batch_size, amp, channels_last, score)


def dice_iou(logits: torch.Tensor, target: torch.Tensor, threshold: float = 0.5):
    """Per-image Dice coefficient and IoU of thresholded masks; empty vs empty scores 1."""
    pred = (torch.sigmoid(logits) > threshold).flatten(1).float()
    t = (target > 0.5).flatten(1).float()
    inter = (pred * t).sum(1)
    total = pred.sum(1) + t.sum(1)
    union = total - inter
    dice = torch.where(total > 0, 2 * inter / total.clamp_min(1), torch.ones_like(total))
    iou = torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))
    return dice, iou
