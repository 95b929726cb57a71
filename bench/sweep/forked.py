"""Sweep runs started by forking the runner, which has imported once what every run needs.

A run process spends seconds importing torch (and, through the optimiser, torch's compiler
stack), the model families, matplotlib and scikit-learn before it trains for a moment; a
sweep of short runs pays that in every run. The local runner imports them once and forks
a child per run: a real process of its own (its pid, its log, its signals, the
configuration's lock inherited and held until it exits) that calls `run.py`'s `main` with
the run's arguments, exactly the command a W&B agent would execute. The runner never
touches CUDA (the GPU count and memory are asked of a short-lived subprocess), so each
child initialises its own device as a fresh process does.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import traceback


def prewarm(tools: bool = True, embed: bool = False) -> None:
    """Import in the runner what every run imports (the children inherit it); with `tools`,
    also the evaluation tools and the scikit-learn and torchmetrics parts they use; with
    `embed`, UMAP (with its compiled code from the cache folder)."""
    import torch._dynamo  # noqa: F401  (an optimiser's first call imports it)

    import bench.run.evaluate  # noqa: F401  (metrics, figures: matplotlib)
    import bench.run.runner  # noqa: F401  (torch, training, the run store)
    from bench.config.spec import resolve
    resolve({})  # the model families, found and imported once
    if tools:
        import sklearn.decomposition  # noqa: F401
        import sklearn.linear_model  # noqa: F401
        import sklearn.manifold  # noqa: F401
        import sklearn.mixture  # noqa: F401
        import sklearn.neighbors  # noqa: F401
        import sklearn.preprocessing  # noqa: F401
        import torchmetrics.image.fid  # noqa: F401  (the sample tool's Frechet distance)

        from bench.tools import tools as registered
        registered()
    if embed:  # imported, never run here: OpenMP used before a fork would abort the children
        from bench.core.cache import import_umap
        import_umap(compile=False)


def gpu_info() -> tuple[int, float]:
    """(visible CUDA devices, the least free memory among them in GiB), asked of a subprocess
    so that this process never initialises CUDA (a forked child could not use it then). A
    machine without NVIDIA's device files has none, and no subprocess is needed to say so."""
    if not os.path.exists("/dev/nvidiactl") and not os.environ.get("CUDA_VISIBLE_DEVICES"):
        return 0, 0.0
    code = ("import json, torch\n"
            "n = torch.cuda.device_count() if torch.cuda.is_available() else 0\n"
            "free = min([torch.cuda.mem_get_info(i)[0] for i in range(n)] or [0]) / 2 ** 30\n"
            "print(json.dumps([n, free]))")
    try:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        n, free = json.loads(p.stdout.strip().splitlines()[-1])
        return int(n), float(free)
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return 0, 0.0


class ForkedRun:
    """A run in a forked child, with the part of `subprocess.Popen` the runner uses."""

    def __init__(self, argv: list[str], env: dict, log, keep_fd: int):
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(argv, env, log.fileno())
        self.pid, self.returncode = pid, None

    def poll(self):
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self):
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, sig) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)


def _child(argv: list[str], env: dict, log_fd: int):
    """The forked run: its own output, environment and signals, then run.py's main; never returns."""
    code = 1
    try:
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_DFL)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = list(argv)
        from bench.run.runner import main
        code = main(list(argv[1:]))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code if isinstance(code, int) else 1)
