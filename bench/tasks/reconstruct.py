"""Reconstruct the input image: the autoencoders' task, scored by MSE, MAE, PSNR, SSIM and SNR.

Its test numbers also carry the model's own loss terms on the test split (a VAE's recon_loss
and KL, a sparse AE's L1) and the output-collapse check; the figure shows nine fixed test
images and their reconstructions (a denoiser's noisy input and output too). With corrupted
inputs the same model denoises (`denoise`, its twin).
"""
from __future__ import annotations

from bench.config.tasks import register_task

IMAGE_KEYS = frozenset({"mse", "mae", "psnr", "ssim", "snr"})


def evaluate(model, data, spec, device) -> dict:
    import sys

    from bench.measure import metrics
    from bench.records.health import output_collapse
    from bench.run.evaluate import output_spread
    from bench.run.train import evaluate_loss

    kw = dict(amp=spec.amp, channels_last=spec.channels_last)
    res = {f"test/{k}": v for k, v in metrics.reconstruction(model, data.test, device, **kw).items()}
    # The model's own terms on the test set too (loss; a VAE's recon_loss and kl; a sparse AE's l1)
    terms = evaluate_loss(model, data.test, max(spec.batch_size, 256), device, spec.amp, spec.channels_last)
    res.update({f"test/{k}": v for k, v in terms.items() if f"test/{k}" not in res and k != "beta_now"})
    res["collapse/output_spread"] = output_spread(model, data, device)
    res.update({f"test/{k}": v for k, v in metrics.trivial_baselines(data.train, data.test, device).items()})
    why = output_collapse(res)  # the one rule (bench.records.health), on the numbers recorded here
    res["warning/output_collapsed"] = why is not None
    if why:
        bn = getattr(getattr(spec, "family", None), "batchnorm", None)  # suggested only where it is off
        print(f"warning: {spec.model}'s output does not depend on its input (collapsed): {why}; "
              f"train longer{', lower --lr, or add --batchnorm' if bn is False else ' or lower --lr'}",
              file=sys.stderr, flush=True)
    if model.noise_level > 0:
        noisy = metrics.reconstruction(model, data.test, device, sigma=model.noise_level,
                                       noise_type=model.noise_type, seed=spec.seed, with_input=True, **kw)
        res.update({f"test_noisy/{k}": v for k, v in noisy.items()})
    return res


def figure(model, data, spec, device, path):
    import torch

    from bench.core.tensors import to_float
    from bench.measure import grids
    from bench.records.store import RunDir
    from bench.run.evaluate import save_recon_arrays, shown_images

    model.eval()
    with torch.no_grad():
        x = to_float(data.test.x[shown_images(len(data.test)).to(data.test.x.device)].to(device))
        rows = [("original", x)]
        if model.noise_level > 0:
            g = torch.Generator(device=device).manual_seed(spec.seed)
            noisy = model.corrupt(x, g)
            rows += [(f"noisy s={model.noise_level:g}", noisy), ("denoised", model(noisy)["recon"])]
        rows.append(("reconstruction", model(x)["recon"]))
    save_recon_arrays(path.parent.parent / RunDir.RECON_ARRAYS, rows)
    return grids.image_rows(rows, path, grids.run_title(spec))


def same_image(x, num_classes):
    """The forward pass outputs `recon`, an image of the input's shape in [0, 1]."""
    return "recon", tuple(x.shape)


register_task("reconstruct", targets=None, test_keys=IMAGE_KEYS, autoencoder=True, evaluate=evaluate,
              output=same_image, figure=figure, corrupted="denoise", in_suite=True,
              description="reconstruct the input image (MSE, MAE, PSNR, SSIM, SNR)")
