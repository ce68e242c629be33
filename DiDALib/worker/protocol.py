"""What the Slicer session and the worker process say to each other (numpy and the standard library only).

Requests go to the worker's stdin, one JSON object per line::

    {"op": "job", "protocol": 1, "id": "3", "dir": "<job folder>",
     "model": {"path": "<package folder>", "trust_code": false},
     "settings": {"grids": [7, 9, 11], "fill": "black", "device": "auto", ...},
     "indices": [12, 13], "preview": false}
    {"op": "cancel", "id": "3"}
    {"op": "shutdown"}

A job's B-scans are ``<job folder>/bscans.npy`` (float32, (n, depth, width): position i holds B-scan
``indices[i]`` of the volume), which the worker memory-maps, so no image goes through a pipe. A job without
``indices`` only loads the model. The worker appends the job's events to ``<job folder>/events.jsonl``, one JSON
object per line, in the order they happened (``seq`` counts them):

``ready``      the model is loaded (or was still loaded: ``warm``): classes, score mode (as set: a mode chosen on
               the B-scans themselves is in their ``grid`` and ``result`` events), device, grids, weights, fill,
               the model-input size and the region the B-scans cover there
``runtime``    which runtime runs the model's passes and why (``runtime.RuntimeChoice.to_json``; ``say``: whether to
               show it), once per job, after its first batch (the first B-scan of a new explainer settles it)
``progress``   images_done, images_total, passes_done, passes_per_image
``grid``       a preview (when the job asks for them): grid ``n`` of B-scan ``index`` with its deltas and score mode
``result``     a finished B-scan: its base scores and the values of every grid (``estimator``: leave-one-out d,
               or Shapley values with their standard errors, ``stderr``)
``done``, ``cancelled`` (with the passes made after the request), ``error`` (message, kind)
               the last event of every job

Arrays travel as base64 of their little-endian bytes with dtype and shape, so every value arrives bit for bit.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.result import DiDAResult
from ..engine.schedule import grid_key

PROTOCOL = 1
BSCANS_FILE = "bscans.npy"
EVENTS_FILE = "events.jsonl"
TERMINAL = ("done", "cancelled", "error")
#: ``error`` kinds the session acts on: a device that is not there (offer the CPU), a worker that died.
DEVICE_ERROR = "device"
DIED = "died"


@dataclass(frozen=True)
class ModelRequest:
    """Which model package a job runs. ``trust_code`` lets the worker run Python code the package brings (formats
    that need it); it is False unless the user agreed to run that file."""

    path: str
    trust_code: bool = False

    def to_dict(self) -> dict:
        return {"path": str(self.path), "trust_code": bool(self.trust_code)}

    @classmethod
    def from_dict(cls, data: dict) -> ModelRequest:
        return cls(str(data["path"]), bool(data.get("trust_code", False)))


@dataclass
class JobRequest:
    """One job: a model, ``ExplainSettings`` fields as plain values, and which B-scans (volume indices, in the order
    of the job's ``bscans.npy``); ``preview`` streams each grid of each B-scan as it completes."""

    model: ModelRequest
    settings: dict = field(default_factory=dict)
    indices: list[int] = field(default_factory=list)
    preview: bool = False

    def to_message(self, job_id: str, folder: str | Path) -> dict:
        return {"op": "job", "protocol": PROTOCOL, "id": job_id, "dir": str(folder), "model": self.model.to_dict(),
                "settings": self.settings, "indices": [int(i) for i in self.indices], "preview": bool(self.preview)}

    @classmethod
    def from_message(cls, msg: dict) -> JobRequest:
        if msg.get("protocol") != PROTOCOL:
            raise ValueError(f"the DiDA module speaks protocol {msg.get('protocol')!r} and this worker {PROTOCOL}: "
                             "restart Slicer after updating DiDA")
        return cls(ModelRequest.from_dict(msg["model"]), dict(msg.get("settings") or {}),
                   [int(i) for i in msg.get("indices") or []], bool(msg.get("preview", False)))


@dataclass
class Event:
    """One event of a job: its kind (``ready``, ``progress``, ...), its fields, and its place in the job's stream."""

    kind: str
    data: dict[str, Any]
    seq: int = -1

    @property
    def terminal(self) -> bool:
        return self.kind in TERMINAL


def encode_array(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a)
    little = a.astype(a.dtype.newbyteorder("<"), copy=False)
    return {"dtype": little.dtype.str, "shape": list(a.shape), "data": base64.b64encode(little.tobytes()).decode()}


def decode_array(obj: dict) -> np.ndarray:
    flat = np.frombuffer(base64.b64decode(obj["data"]), dtype=np.dtype(obj["dtype"]))
    return flat.reshape(obj["shape"]).astype(flat.dtype.newbyteorder("="))


def encode_result(result: DiDAResult, index: int) -> dict:
    """The fields of a ``result`` event for a finished B-scan (``index``: its place in the volume)."""
    out = {"index": int(index), "base": encode_array(result.base_scores),
           "deltas": {str(n): encode_array(d) for n, d in result.deltas.items()},
           "image_shape": list(result.image_shape), "region": list(result.region), "score": result.score,
           "estimator": result.estimator}
    if result.stderr is not None:
        out["stderr"] = {str(n): encode_array(s) for n, s in result.stderr.items()}
    return out


def decode_result(data: dict, class_names: tuple[str, ...] | None = None) -> DiDAResult:
    return DiDAResult(base_scores=decode_array(data["base"]),
                      deltas={grid_key(n): decode_array(d) for n, d in data["deltas"].items()},
                      image_shape=tuple(data["image_shape"]), region=tuple(data["region"]), score=data["score"],
                      index=int(data["index"]), class_names=class_names,
                      estimator=data.get("estimator", "leave-one-out"),
                      stderr={grid_key(n): decode_array(s) for n, s in data["stderr"].items()}
                      if "stderr" in data else None)


class EventWriter:
    """The worker's side of ``events.jsonl``: each event is one line, flushed at once so the session sees it. The
    file is created here, never opened if it exists (so never through a symbolic link someone put there)."""

    def __init__(self, path: str | Path):
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0) \
            | getattr(os, "O_BINARY", 0)
        self._file = os.fdopen(os.open(path, flags, 0o600), "ab")  # noqa: SIM115 (closed by close())
        self._seq = 0

    def fileno(self) -> int:
        return self._file.fileno()

    def write(self, event: str, /, **data: Any) -> None:
        line = json.dumps({"seq": self._seq, "event": event, **data}, separators=(",", ":"))
        self._file.write(line.encode() + b"\n")
        self._file.flush()
        self._seq += 1

    def close(self) -> None:
        self._file.close()


class EventReader:
    """The session's side of ``events.jsonl``: each ``read()`` returns the events appended since the last one, in
    order; a line the worker is still writing waits for the next read. Never blocks."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._offset = 0
        self._partial = b""
        self._seq = -1
        self.at_end = True  # the last read reached the end of what the worker had written

    def read(self, max_bytes: int | None = None) -> list[Event]:
        """The whole events appended since the last read; with ``max_bytes``, only those within that many more
        bytes of the file (the rest waits for the next read: a long backlog is parsed a share at a time)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read() if max_bytes is None else f.read(max_bytes)
                self.at_end = not f.read(1)
        except FileNotFoundError:
            self.at_end = True
            return []
        self._offset += len(chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        events = []
        for line in lines:
            if not line.strip():
                continue
            obj = json.loads(line)
            seq = int(obj.pop("seq"))
            if seq != self._seq + 1:
                raise RuntimeError(f"{self.path}: event {seq} follows event {self._seq}: the event stream is broken")
            self._seq = seq
            events.append(Event(obj.pop("event"), obj, seq))
        return events
