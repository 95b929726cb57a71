"""The model-agnostic training loop.

Adam over preloaded uint8 tensors, per-batch conversion, one metrics row per epoch,
checkpoints (last and best) after every epoch. Scalars are summed on the device and
read once per epoch, so the step has no host syncs apart from the cheap finiteness
check (every step on CPU, every 50 steps on CUDA). The loop knows nothing about the
model beyond its output dict: every 0-dim tensor in it becomes a `train/` metric.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field

import torch

from bench.core import faults
from bench.core.progress import epoch_bar
from bench.core.signals import StopSignals
from bench.core.tensors import autocast, image_grid, prepare, to_float, to_uint8  # noqa: F401  (autocast, prepare: also bench.speed)
from bench.data import DataBundle, batches
from bench.records import checkpoint


class Diverged(Exception):
    def __init__(self, epoch, step, value):
        super().__init__(f"non-finite loss ({value}) at epoch {epoch}, step {step}")
        self.epoch, self.step, self.value = epoch, step, value


@dataclass
class TrainState:
    epoch: int = 0  # epochs finished
    history: list = field(default_factory=list)
    best_value: float | None = None
    best_epoch: int | None = None
    train_seconds: float = 0.0
    compile_seconds: float = 0.0
    snapshots: dict = field(default_factory=dict)  # epoch -> uint8 reconstructions of fixed test images
    stopped: str | None = None  # why the sweep's early termination ended training here (bench.run.stopping)

    def __post_init__(self):
        """A state read back from a checkpoint holds what this class writes, or is refused."""
        def number(v, kind):
            return isinstance(v, kind) and not isinstance(v, bool)

        ok = (number(self.epoch, int) and self.epoch >= 0 and isinstance(self.history, list)
              and isinstance(self.snapshots, dict) and number(self.train_seconds, (int, float))
              and number(self.compile_seconds, (int, float))
              and (self.best_value is None or number(self.best_value, (int, float)))
              and (self.best_epoch is None or number(self.best_epoch, int))
              and (self.stopped is None or isinstance(self.stopped, str)))
        if not ok:
            raise TypeError(f"training state has values of the wrong type (epoch {self.epoch!r})")


def snapshot_epochs(epochs: int, n: int = 5) -> set[int]:
    """Epochs whose reconstructions are kept: the first, the last, and evenly between."""
    return {int(round(1 + i * (epochs - 1) / (n - 1))) for i in range(n)} if epochs > 1 else {1}


@torch.no_grad()
def snapshot_inputs(model, data, seed: int, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """(the fixed test images every snapshot shows, what the model is given): a model
    trained on corrupted input is shown the same corrupted images at every epoch, so its
    snapshots show what it is asked to do (denoise), not a copy of clean input."""
    x = to_float(data.test.x[:n])
    if model.noise_level <= 0:
        return x, x
    return x, model.corrupt(x, torch.Generator(device=x.device).manual_seed(seed + 2))


def snapshot_rows(model, data, seed: int, snapshots: dict) -> list[tuple[str, torch.Tensor]]:
    """Rows of a snapshot figure: original, corrupted input (denoisers), then each epoch's output."""
    x, given = snapshot_inputs(model, data, seed, len(next(iter(snapshots.values()))))
    rows = [("original", x)] + ([(f"input ({model.noise_type} noise {model.noise_level:g})", given)]
                                if given is not x else [])
    return rows + [(f"epoch {e}", to_float(s.to(x.device))) for e, s in sorted(snapshots.items())]


def scalar_terms(out: dict) -> dict:
    return {k: v for k, v in out.items() if torch.is_tensor(v) and v.dim() == 0}


@torch.no_grad()
def evaluate_loss(model, split, batch_size, device, amp="off", channels_last=False) -> dict:
    """Mean of every scalar term over a split (eval mode), weighted by batch size."""
    model.eval()
    sums, n = {}, 0
    for x, y in batches(split, batch_size):
        x = prepare(x.to(device, non_blocking=True), channels_last)
        y = None if y is None else y.to(device, non_blocking=True)
        with autocast(device, amp):
            out = model(x, y)
        b = x.shape[0]
        for k, v in scalar_terms(out).items():
            sums[k] = sums.get(k, 0.0) + v.detach().float() * b
        n += b
    return {k: (v / n).item() for k, v in sums.items()}


def choose_amp(model, split, batch_size, device, channels_last=False, steps=10) -> str:
    """`--amp auto`: "off" on CPU; on CUDA whichever of fp32 and bf16 runs `steps` training
    steps (forward and backward) of this model faster. bf16 is not always faster: small
    models are bound by kernel launches, not by arithmetic. The model's weights, buffers,
    gradients and the RNGs are left as they were."""
    if device.type != "cuda":
        return "off"
    import copy

    state = copy.deepcopy(model.state_dict())
    x, y = next(batches(split, batch_size))
    x = prepare(x.to(device), channels_last)
    y = None if y is None else y.to(device)
    times = {}
    with torch.random.fork_rng(devices=[device]):
        model.train()
        for amp in ("off", "bf16", "off", "bf16"):  # the second round is timed, the first warms up
            torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                with autocast(device, amp):
                    out = model(x, y)
                out["loss"].backward()
            torch.cuda.synchronize(device)
            times[amp] = time.perf_counter() - t0
    model.load_state_dict(state)
    model.zero_grad(set_to_none=True)
    return min(times, key=times.get)


def better(value, best, mode):
    if best is None:
        return True
    return value < best if mode == "min" else value > best


def read_resumable(path, model, spec) -> dict:
    """`last.pt` of a stopped run, checked against this model and config: weights loaded
    into `model`, optimiser state and training state proven loadable. Anything wrong with
    the file (unreadable, foreign, another architecture) is bad input, raised before the
    run is changed in any way."""
    ck = checkpoint.load(path)
    checkpoint.load_weights(model, ck, path)
    try:
        _optimizer(model, spec).load_state_dict(ck["optimizer"])
        TrainState(**ck["state"])
        checkpoint.set_rng_state(ck["rng"], torch.Generator())
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise checkpoint.UsageError(f"checkpoint {path} cannot resume this run "
                                    f"({type(e).__name__}: {' '.join(str(e).split())[:120]})") from None
    return ck


def _optimizer(model, spec):
    return torch.optim.Adam(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay,
                            eps=getattr(spec, "adam_eps", 1e-8))


IWAE_STAGES = 8  # Burda et al. 2016, section 5: stage i (0..7) lasts 3^i epochs at lr * 10^(-i/7)


def lr_factor(schedule: str, epoch: int) -> float:
    """The learning rate of `epoch` (0-based) over --lr; `iwae`: the last stage's rate after 3,280 epochs."""
    if schedule != "iwae":
        return 1.0
    ends = [sum(3 ** j for j in range(i + 1)) for i in range(IWAE_STAGES)]  # 1, 4, 13, ..., 3280
    return 10 ** (-min([i for i, end in enumerate(ends) if epoch < end] or [IWAE_STAGES - 1]) / 7)


class Trainer:
    """Trains one model on one run, complete when built: `resume` is a checkpoint from
    `read_resumable`, `record` the resolved config stored in every checkpoint (the same
    dict as config.json), `step_fn` the callable a training step runs (the model, or its
    compiled form), `early_stop` the sweep's early-termination rule (`bench.run.stopping.EarlyStop`),
    asked after each epoch but the last."""

    def __init__(self, model, data: DataBundle, spec, run, tracking, device, log=print, *,
                 record: dict | None = None, resume: dict | None = None, step_fn=None, early_stop=None):
        self.model, self.data, self.spec, self.run = model, data, spec, run
        self.tracking, self.device, self.log = tracking, device, log
        self.opt = _optimizer(model, spec)
        self.shuffle = torch.Generator().manual_seed(spec.seed)
        self.scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" and spec.amp == "fp16" else None
        self.state = TrainState()
        self.step_fn = step_fn or model
        self.early_stop = early_stop
        self.check_every = 1 if device.type == "cpu" else 50
        self.writer = checkpoint.Writer()
        self.costs: list[dict[str, float]] = [{}]  # per epoch of this process: seconds of each work beside training
        self.starts = []
        self.ckpt_meta = {"in_shape": list(data.shape), "num_classes": data.num_classes,
                          "config": record if record is not None else spec.to_dict()}
        if resume is not None:
            self.opt.load_state_dict(resume["optimizer"])
            if self.scaler and resume.get("scaler"):
                self.scaler.load_state_dict(resume["scaler"])
            self.state = TrainState(**resume["state"])
            checkpoint.set_rng_state(resume["rng"], self.shuffle)

    # -- checkpoints, written by a background thread (`checkpoint.Writer`) while training goes on
    def save(self):
        faults.point("checkpoint")
        done = self.state.epoch
        self.writer.submit(self.run.ckpt("last"), dict(
            self.ckpt_meta, model=self.model.state_dict(), optimizer=self.opt.state_dict(),
            scaler=self.scaler.state_dict() if self.scaler else None,
            state=vars(self.state), rng=checkpoint.rng_state(self.shuffle)),
            then=lambda: faults.point(f"checkpointed@{done}"))

    def save_best(self):
        self.save_weights("best")

    def save_weights(self, name: str):
        """This epoch's weights alone as `<name>.pt`: best.pt, and epoch-N.pt for --keep-epochs
        (`bench.evaluate RUN --checkpoint epoch-N`)."""
        self.writer.submit(self.run.ckpt(name), dict(self.ckpt_meta, model=self.model.state_dict(),
                                                     epoch=self.state.epoch))

    def timed(self, work: str, fn, *args):
        """Run one piece of an epoch's work beside training, adding its seconds to `costs`."""
        t0 = time.perf_counter()
        out = fn(*args)
        self.costs[-1][work] = self.costs[-1].get(work, 0.0) + time.perf_counter() - t0
        return out

    # -- one epoch
    def train_epoch(self, epoch: int, stop: StopSignals) -> dict:
        model, spec, dev = self.model, self.spec, self.device
        model.train()
        model.set_epoch(epoch, spec.epochs)
        schedule = getattr(spec, "lr_schedule", "constant")
        for group in self.opt.param_groups:
            group["lr"] = spec.lr * lr_factor(schedule, epoch)
        sums, n, t0 = {}, 0, time.perf_counter()
        bar = epoch_bar(len(self.data.train), spec.batch_size, f"epoch {epoch + 1}/{spec.epochs}")
        for step, (x, y) in enumerate(batches(self.data.train, spec.batch_size, shuffle=True,
                                              generator=self.shuffle)):
            stop.check(f"epoch {epoch + 1}")
            x = prepare(x.to(dev, non_blocking=True), spec.channels_last)
            y = None if y is None else y.to(dev, non_blocking=True)
            t_step = time.perf_counter()
            with autocast(dev, spec.amp):
                out = self.step_fn(x, y)
            loss = out["loss"]
            self.opt.zero_grad(set_to_none=True)
            if self.scaler:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.opt)
                self.scaler.update()
            else:
                loss.backward()
                try:
                    self.opt.step()
                except RuntimeError as e:  # an update too large for the parameters' dtype
                    if "overflow" not in str(e):
                        raise
                    raise Diverged(epoch + 1, step, "overflow in the optimiser step") from None
            if epoch == self.state.epoch and step == 0 and spec.compile:
                self.state.compile_seconds = time.perf_counter() - t_step
            if step % self.check_every == 0 and not math.isfinite(loss.item()):
                raise Diverged(epoch + 1, step, loss.item())
            b = x.shape[0]
            for k, v in scalar_terms(out).items():
                sums[k] = sums.get(k, 0.0) + v.detach().float() * b
            n += b
            bar.update(1)
        bar.close()
        metrics = {k: (v / n).item() for k, v in sums.items()}
        if schedule != "constant":
            metrics["lr_now"] = self.opt.param_groups[0]["lr"]
        if not math.isfinite(metrics["loss"]):
            raise Diverged(epoch + 1, "end", metrics["loss"])
        seconds = time.perf_counter() - t0
        return {"metrics": metrics, "seconds": seconds, "images": n}

    @torch.no_grad()
    def snapshot(self, epoch: int, n_images: int = 8):
        if not self.model.reconstructs or epoch not in snapshot_epochs(self.spec.epochs):
            return
        self.model.eval()
        _, given = snapshot_inputs(self.model, self.data, self.spec.seed, n_images)
        recon = self.model(prepare(given, self.spec.channels_last))["recon"]
        self.state.snapshots[epoch] = to_uint8(recon)

    def snapshot_media(self, epoch: int) -> dict:
        """This epoch's snapshot as one image for the W&B image slider over epochs: the test
        images, what the model is given (corrupted, for a denoiser), and its outputs; {} on
        epochs without a snapshot."""
        if epoch not in self.state.snapshots:
            return {}
        recon = self.state.snapshots[epoch]
        rows = snapshot_rows(self.model, self.data, self.spec.seed, {epoch: recon})
        grid = image_grid(torch.cat([to_uint8(r.cpu()) for _, r in rows]), nrow=len(recon), padding=1)
        grid = grid.permute(1, 2, 0).numpy()
        grid = grid[..., 0] if grid.shape[2] == 1 else grid  # grey images as (H, W)
        return {"media/reconstructions": (grid, f"epoch {epoch}: " + ", ".join(name for name, _ in rows[:-1])
                                          + " and the outputs, top to bottom")}

    def log_progress(self, key: str) -> None:
        """The summary's view of training (epochs done, best epoch, value and metric), from the state."""
        st = self.state
        self.tracking.log_summary(dict(epoch=st.epoch, best_epoch=st.best_epoch, best_value=st.best_value,
                                       best_metric=key if key in st.history[-1] else "val/loss"))

    def evaluate(self, split: str) -> dict:
        """Every scalar term over a split, seen the way the model validates (a denoiser on
        inputs corrupted as in training), so the best checkpoint measures what it learns."""
        spec = self.spec
        with self.model.validation(spec.seed + 1, self.device):
            return evaluate_loss(self.model, getattr(self.data, split), max(spec.batch_size, 256), self.device,
                                 spec.amp, spec.channels_last)

    def fit(self) -> TrainState:
        """Train the remaining epochs; returns with every checkpoint on disk, however it ends."""
        try:
            return self._fit()
        finally:
            self.timed("checkpoint_wait", self.writer.wait)

    def cost_summary(self) -> dict:
        """`time/epoch_work/<work>`: seconds of each work beside training and validation in a steady
        epoch (median over the epochs after the first, which warms up: W&B's first images import
        pandas); `checkpoint_wait`: the writes left at the end, per epoch."""
        epochs = self.costs[1:]  # costs[0]: before the first epoch of this process
        steady = epochs[1:] or epochs
        out = {f"time/epoch_work/{k}": round(statistics.median(c.get(k, 0.0) for c in steady), 5)
               for k in {k for c in epochs for k in c} - {"checkpoint_wait"}}
        wait = self.costs[-1].get("checkpoint_wait", 0.0)
        out["time/epoch_work/checkpoint_wait"] = round(wait / max(1, len(epochs)), 5)
        periods = [b - a for a, b in zip(self.starts, self.starts[1:])]  # one epoch's start to the next's
        periods = periods[1:] or periods  # the first epoch warms up
        if periods:  # what an epoch costs whole: training, validation and everything the harness does
            out["time/epoch_period_seconds"] = round(statistics.median(periods), 5)
        # each epoch's start on the system's monotonic clock (time.perf_counter), for setting a
        # run's epochs beside another process's (python -m bench.speed --epoch)
        out["time/epoch_starts_monotonic"] = [round(s, 4) for s in self.starts]
        return out

    def _fit(self) -> TrainState:
        spec, st = self.spec, self.state
        key, mode = self.model.best_metric
        if spec.select_on == "test":
            key = "test/" + key.split("/", 1)[1]
        if st.history:  # resumed: the summary is the checkpoint's, whatever the last one written says
            self.log_progress(key)
        with StopSignals() as stop:  # SIGINT/SIGTERM stop the loop between steps
            for epoch in range(st.epoch, st.epoch if st.stopped else spec.epochs):
                t_epoch = time.perf_counter()
                self.starts.append(t_epoch)
                self.costs.append({})
                tr = self.train_epoch(epoch, stop)
                row = {"epoch": epoch + 1}
                row.update({f"train/{k}": v for k, v in tr["metrics"].items()})
                for split in self.model.epoch_splits:
                    row.update({f"{split}/{k}": v for k, v in self.evaluate(split).items()})
                row.update({"time/epoch_seconds": tr["seconds"],
                            "time/images_per_sec": tr["images"] / tr["seconds"]})
                if not math.isfinite(row.get("val/loss", 0.0)):
                    raise Diverged(epoch + 1, "validation", row.get("val/loss"))
                st.epoch = epoch + 1
                st.train_seconds += tr["seconds"]
                st.history.append(row)
                if better(row.get(key, row["val/loss"]), st.best_value, mode):
                    st.best_value, st.best_epoch = row.get(key, row["val/loss"]), epoch + 1
                    self.timed("best_checkpoint", self.save_best)
                self.timed("snapshot", self.snapshot, epoch + 1)
                if st.epoch in (getattr(spec, "keep_epochs", None) or ()):
                    self.timed("kept_checkpoint", self.save_weights, f"epoch-{st.epoch}")
                # What an epoch costs: training, validation, best.pt, snapshot; taken before last.pt
                # is written so that the checkpoint (and a resumed run's history) holds it.
                row["time/epoch_wall_seconds"] = time.perf_counter() - t_epoch
                self.timed("last_checkpoint", self.save)
                self.timed("tracking", self.tracking.log_epoch, row, self.snapshot_media(epoch + 1))
                faults.point(f"logged@{st.epoch}")
                self.timed("tracking", self.log_progress, key)
                self.log(format_row(row, spec.epochs, self.model.quiet_terms()))
                stop.check(f"epoch {epoch + 1}")
                if self.early_stop is not None and st.epoch < spec.epochs:
                    st.stopped = self.early_stop()
                    if st.stopped:
                        self.save()  # the decision is part of the run's state: a resume does not train on
                        self.log(f"stopped early after epoch {st.epoch}/{spec.epochs}: {st.stopped}")
                        break
        return st


def format_row(row: dict, epochs: int, quiet: set[str] = frozenset()) -> str:
    """One epoch's console line: each train/ and val/ term the model uses, once (`quiet`: the
    terms the model leaves off, `Model.quiet_terms`)."""
    parts = [f"epoch {row['epoch']}/{epochs}"]
    for k, v in row.items():
        if k.startswith(("train/", "val/")) and not k.endswith(("beta_now", "mask_frac")) \
                and k.split("/", 1)[1] not in quiet:
            parts.append(f"{k} {v:.4g}")
    parts.append(f"{row['time/epoch_seconds']:.1f}s {row['time/images_per_sec']:.0f} img/s")
    return "  ".join(parts)
