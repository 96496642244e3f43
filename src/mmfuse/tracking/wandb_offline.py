"""Read what an offline W&B run holds (name, group, tags, job type, config, summary) without a server.

An offline run is a LevelDB-style log of protobuf records (`run-<id>.wandb`).
wandb >= 0.19 reads it only from Go; this small reader lets tests and reports
check what `wandb sync` will upload.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Iterator

BLOCK = 32768
HEADER = struct.Struct("<IHB")  # crc32, length, chunk type
FILE_HEADER = struct.Struct("<4sHB")  # b":W&B", magic, version
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[bytes]:
    data = Path(path).read_bytes()
    ident, _, _ = FILE_HEADER.unpack_from(data, 0)
    if ident != b":W&B":
        raise ValueError(f"{path}: not a W&B run file")
    pos, pending = FILE_HEADER.size, b""
    while pos + HEADER.size <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER.size:
            pos += left  # block trailer padding
            continue
        _, length, kind = HEADER.unpack_from(data, pos)
        if kind == 0 and length == 0:
            pos += left
            continue
        chunk = data[pos + HEADER.size : pos + HEADER.size + length]
        pos += HEADER.size + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk
            pending = b""


def read_offline_run(run_folder: Path) -> dict[str, Any]:
    """{id, name, group, job_type, tags, config, summary} of an `offline-run-*` folder."""
    from wandb.proto import wandb_internal_pb2 as pb

    (log_file,) = Path(run_folder).glob("run-*.wandb")
    out: dict[str, Any] = {"config": {}, "summary": {}}
    for raw in records(log_file):
        rec = pb.Record()
        rec.ParseFromString(raw)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            out.update(id=r.run_id, name=r.display_name, group=r.run_group, job_type=r.job_type, tags=list(r.tags))
            out["config"].update({i.key: json.loads(i.value_json) for i in r.config.update})
        elif kind == "config":
            out["config"].update({i.key: json.loads(i.value_json) for i in rec.config.update})
        elif kind == "summary":
            out["summary"].update(
                {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in rec.summary.update}
            )
        elif kind == "exit":
            out["exit_code"] = rec.exit.exit_code
    return out
