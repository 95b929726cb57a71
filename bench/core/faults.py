"""Fault injection for the reliability tests: deliver a signal at a named phase of a run.

    AEBENCH_FAULT=test_evaluation:SIGTERM python run.py ...      # at the phase's start
    AEBENCH_FAULT=wandb_init:SIGINT:0.5 python run.py ...         # 0.5 s into the phase
    AEBENCH_FAULT=logged@3:SIGKILL python run.py ...              # epoch 3's row written, its summary not

Inside an epoch's end: `checkpointed@N` (last.pt written) and `logged@N` (its row appended).

Unset (always, outside tests) every call is a dictionary lookup and nothing else.
"""
import os
import re
import signal
import threading


def point(phase: str) -> None:
    fault = os.environ.get("AEBENCH_FAULT")
    if not fault:
        return
    match = re.fullmatch(r"(.+?):(SIG[A-Z]+)(?::([0-9.]+))?", fault)
    if not match or match.group(1) != phase:
        return
    signum, delay = getattr(signal, match.group(2)), match.group(3)
    if delay:
        threading.Timer(float(delay), os.kill, (os.getpid(), signum)).start()
    else:
        os.kill(os.getpid(), signum)
