"""What a runtime's builder gets: the model, an example input, where the model came from, and the ONNX file that
the ONNX-based runtimes share (the package's own, or the torch model's export: made once, from the cache when it
holds this model's)."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .cache import OnnxCache, entry_key, package_digest
from .export import ExportFailed, export_onnx


class RuntimeUnavailable(ValueError):
    """A runtime cannot run this model here; the message says why in one sentence (a ValueError: a bad choice,
    which the command line reports as such)."""


def onnx_package_file(model) -> Path | None:
    """The ONNX file of a model loaded from an ``onnx`` package (it runs on onnxruntime already), else None."""
    from ..models.onnx_model import OnnxModel

    return Path(model.path) if isinstance(model, OnnxModel) and model.path is not None else None


@dataclass
class BuildContext:
    """Everything a builder may need. ``onnx_file()`` exports at most once per context; ``refresh()`` replaces a
    cached export that failed the probe (stale or damaged) with a new one."""

    model: object
    example: torch.Tensor  # (1, C, H, W): the first image of the run, as the model receives it
    package: Path | None = None  # the model package folder: the export cache's key (None: no caching)
    threads: int = 1
    batch_size: int | None = None
    cache: OnnxCache = field(default_factory=OnnxCache)
    from_cache: bool = False
    exporter: str | None = None
    _file: Path | None = None
    _error: RuntimeUnavailable | None = None
    _temp: str | None = None

    @property
    def is_onnx(self) -> bool:
        return onnx_package_file(self.model) is not None

    def _key(self) -> str | None:
        if self.package is None:
            return None
        return entry_key(package=package_digest(self.package), input=list(self.example.shape[1:]),
                         torch=torch.__version__, model=type(self.model).__qualname__)

    def onnx_file(self) -> Path:
        """The model as an ONNX file. Raises ``RuntimeUnavailable`` when it cannot be exported."""
        if self._error is not None:
            raise self._error
        if self._file is None:
            own = onnx_package_file(self.model)
            if own is not None:
                self._file = own
            else:
                key = self._key()
                cached = self.cache.get(key) if key else None
                self.from_cache = cached is not None
                self._file = cached or self._export(key)
        return self._file

    def refresh(self) -> bool:
        """Export again in place of a cached file (True), or False when the file was not from the cache."""
        if not self.from_cache:
            return False
        self.from_cache, self._file = False, None
        self._file = self._export(self._key())
        return True

    def _export(self, key: str | None) -> Path:
        try:
            data, self.exporter = export_onnx(self.model, self.example)
        except ExportFailed as exc:
            self._error = RuntimeUnavailable(f"the model cannot be exported to ONNX ({exc})")
            raise self._error from None
        if key is not None:
            try:
                return self.cache.put(key, data, {"package": str(self.package), "exporter": self.exporter,
                                                  "input": list(self.example.shape[1:]), "torch": torch.__version__})
            except OSError:
                pass  # a cache folder that cannot be written: this run uses a temporary file instead
        self._temp = self._temp or tempfile.mkdtemp(prefix="dida-onnx-")
        path = Path(self._temp) / "model.onnx"
        path.write_bytes(data)
        return path

    def describe_source(self) -> str:
        """Where the ONNX graph came from, as the end of a sentence ("" for a model that is not exported)."""
        if self._file is None or self.is_onnx:
            return ""
        if self.from_cache:
            return f"; its ONNX export came from the cache ({self.cache.folder})"
        kept = f", kept in {self.cache.folder}" if self.cache.folder in self._file.parents else ""
        return f"; exported to ONNX by torch's {self.exporter} exporter{kept}"

    def close(self) -> None:
        """Remove a temporary export (the runtimes hold the model in memory by now)."""
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)
            self._temp = None
