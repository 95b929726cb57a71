"""Read an offline W&B run back: the `.wandb` file is a LevelDB-style log (7-byte W&B
header, 32 KiB blocks of checksummed chunks) of wandb's own `Record` protobufs."""
from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7  # ":W&B" + magic (2 bytes) + version (1 byte)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", "not a .wandb file"
    out, pos, pending = [], HEADER, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            continue
        if kind == FULL:
            out.append(pb.Record.FromString(chunk))
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            out.append(pb.Record.FromString(pending + chunk))
            pending = b""
    return out


class OfflineRun:
    """What a `.wandb` file says about a run: run record, config, history rows, metric
    definitions, summary, artifacts."""

    def __init__(self, path: Path):
        self.records = records(path)
        kinds = [r.WhichOneof("record_type") for r in self.records]
        self.run = next(r.run for r, k in zip(self.records, kinds) if k == "run")
        self.config = {i.key: json.loads(i.value_json) for r, k in zip(self.records, kinds) if k == "config"
                       for i in r.config.update}
        self.config.update({i.key: json.loads(i.value_json) for i in self.run.config.update})
        self.history = [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
                        for r, k in zip(self.records, kinds) if k == "history"]
        self.metrics = {r.metric.name or r.metric.glob_name: r.metric for r, k in zip(self.records, kinds)
                        if k == "metric"}
        self.summary = {}
        for r, k in zip(self.records, kinds):
            if k == "summary":
                for i in r.summary.update:
                    self.summary[i.key or "/".join(i.nested_key)] = json.loads(i.value_json)
        self.artifacts = [r.artifact for r, k in zip(self.records, kinds) if k == "artifact"]


def offline_run(wandb_dir: Path, run_id: str) -> OfflineRun:
    found = sorted(Path(wandb_dir).glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert found, f"no offline W&B run {run_id} under {wandb_dir}"
    return OfflineRun(found[-1])
