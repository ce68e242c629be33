"""How much memory and disk space a run needs, estimated before it starts, and checked against what the machine
has, so that a run that cannot fit is refused with the figure and the fix instead of filling the memory.

The estimates count what a run adds to the process once its input volume and model are loaded. They are upper
bounds built from the sizes involved (B-scans, model input, batch, classes, figures), not measurements; the
model's activations are the one guess (``ACTIVATION_BYTES_PER_PIXEL``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

#: Peak activation memory of one image's forward pass, per model-input pixel (float32, inference mode, CPU,
#: channels-last). Measured as the rise of the peak resident memory for one 512 x 512 image: test_resnet 23,
#: test_efficientnet 25, resnet18 24, efficientnet_b0 60-66, resnet50 65, convnext_tiny 82 floats per pixel;
#: 96 floats covers them all.
ACTIVATION_BYTES_PER_PIXEL = 96 * 4
#: Width of one panel of a DiDA View figure (``reports.figures``), four panels per figure.
PANEL_WIDTH = 480


class NotEnoughMemory(ValueError):
    """A run whose estimated memory exceeds what the machine (or ``--max-memory``) allows."""


def size_text(n: float) -> str:
    """Bytes for people: '1.2 GB' (powers of 1000)."""
    for unit in ("bytes", "kB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def parse_size(text: str) -> int:
    """'8G', '500MB', '1.5 GB', '2048' (bytes) as bytes (powers of 1000; 'GiB' and friends in powers of 1024)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(i?)[bB]?\s*", text or "")
    if not m:
        raise ValueError(f"size {text!r} is not a size: use e.g. 8G, 500M or 1.5GB")
    power = " KMGT".index(m[2].upper() or " ")
    return int(float(m[1]) * (1024 if m[3] else 1000) ** power)


def available_memory() -> int | None:
    """Memory the OS can give this process now without swapping (Linux ``MemAvailable``), or None if unknown; less
    where the process's address space is capped (``RLIMIT_AS``, e.g. ``ulimit -v``) below what it holds plus that."""
    machine = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    machine = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if machine is None:
        try:
            machine = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            machine = None
    capped = _address_space_left()
    return capped if machine is None else machine if capped is None else min(machine, capped)


def _address_space_left() -> int | None:
    """Bytes of address space this process may still map under ``RLIMIT_AS``, or None when it is not capped."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/statm", encoding="ascii") as f:
            used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        return max(0, soft - used)
    except (ImportError, OSError, ValueError, IndexError, AttributeError):
        return None


@dataclass
class Footprint:
    """Estimated peak memory in named parts (bytes; ``peak`` combines the phases that coexist) and the disk
    space of the files, with the fix to suggest for each part."""

    parts: dict[str, int] = field(default_factory=dict)
    fixes: dict[str, str] = field(default_factory=dict)
    peak: int = 0
    disk: int = 0

    def check(self, limit: int | None = None, what: str = "this run") -> None:
        """Raise ``NotEnoughMemory`` naming the figure, its largest part and the fix when the peak exceeds ``limit``
        (default: the memory available now; nothing is checked where that is unknown)."""
        given = limit is not None
        limit = limit if given else available_memory()
        if limit is None or self.peak <= limit:
            return
        part = max(self.parts, key=self.parts.get)
        source = "--max-memory allows" if given else "the machine has"
        raise NotEnoughMemory(
            f"{what} needs about {size_text(self.peak)} of memory ({part}: {size_text(self.parts[part])}) but "
            f"{source} {size_text(limit)} available: {self.fixes.get(part, 'explain less at a time')}")


def model_pass_bytes(input_size: Sequence[int], channels: int, batch: int) -> int:
    """One batch through the model: the masked images and the activations of the forward pass."""
    pixels = int(input_size[0]) * int(input_size[1])
    return int(batch) * pixels * (int(channels) * 4 + ACTIVATION_BYTES_PER_PIXEL)


def loading_footprint(input_size: Sequence[int], channels: int, weights_bytes: int) -> Footprint:
    """Loading a model package: its weights (the state dict and the parameters) and its test pass on one image."""
    h, w = int(input_size[0]), int(input_size[1])
    fix = (f"the model's input_size {h} x {w} (model.json) is too large for this machine: use a package with a "
           "smaller input_size")
    parts = {"model weights": 2 * int(weights_bytes),
             f"one {h} x {w} model pass": model_pass_bytes((h, w), channels, 1)}
    return Footprint(parts, {k: fix for k in parts}, sum(parts.values()))


def run_footprint(n_bscans: int, bscan_shape: Sequence[int], explained: int, num_classes: int, shown: int,
                  passes: int, input_size: Sequence[int], channels: int, batch: int, figures: bool,
                  contrasts: int = 0, grids: int = 8) -> Footprint:
    """A run over ``explained`` of ``n_bscans`` B-scans (``bscan_shape`` = depth, width), ``passes`` model passes
    per B-scan, ``shown`` classes written as maps (with their scale and en-face maps), ``contrasts`` contrast maps,
    ``grids`` grid sizes, ``batch`` images per model call on the host (1 on a GPU)."""
    depth, width = int(bscan_shape[0]), int(bscan_shape[1])
    bscan = depth * width
    volume = n_bscans * bscan
    results = explained * num_classes * passes * 4 * 2  # every d, and its stacked copy in the results file
    # The engine: the batch, and a B-scan being resized into model input (a float copy and the resize's own).
    engine = model_pass_bytes(input_size, channels, batch) + 12 * bscan
    # Writing, one class at a time: the volume as a SimpleITK image (float32) held throughout; per class a
    # labelmap (uint8) and a net map (float32) over the whole volume, each copied once more for SimpleITK; per
    # B-scan the Mixed Image's positive, negative and net maps and the label encoding's temporaries.
    reference = 4 * volume
    maps = 10 * volume + 28 * bscan
    # A feature-scale map holds every grid's normalised evidence of one B-scan (float32) and its argmax (int64).
    maps = max(maps, 2 * volume + (4 * grids + 16) * bscan)
    # Figures, streamed at panel size: a float copy of one B-scan to resize, then the panels' Mixed Images and
    # overlays (measured with tracemalloc: about 100 bytes per panel pixel, whatever the B-scan's size).
    ph = max(1, round(depth * PANEL_WIDTH / max(1, width)))
    figure = (8 * bscan + 128 * PANEL_WIDTH * ph) if figures else 0
    parts = {"results": results, "model batches": engine, "output maps": reference + maps}
    smaller = ("give --batch-size 1, or " if batch > 1 else "") + "use a package with a smaller input_size"
    fixes = {
        "results": "explain fewer B-scans at a time (--bscans), or use fewer grids or fewer --permutations",
        "model batches": f"the model input {input_size[0]} x {input_size[1]} at a batch of {batch} is too large: "
                         f"{smaller}",
        "output maps": "the output maps hold the whole volume: explain a smaller volume, or split it",
    }
    if figures:
        parts["figures"] = reference + figure
        fixes["figures"] = "add --no-figures"
    peak = results + max(engine, reference + max(maps, figure))
    disk = (4 * volume + explained * bscan * (7 * min(shown, num_classes) + 5 * contrasts)
            + explained * num_classes * passes * 4
            + (explained * (4 * PANEL_WIDTH + 18) * (ph + 28) * 3 if figures else 0))
    return Footprint(parts, fixes, peak, disk)


def fitting_batch(fits, candidates: Sequence[int]) -> int | None:
    """The largest of ``candidates`` for which ``fits(batch)`` holds, or None."""
    good = [b for b in candidates if fits(b)]
    return max(good) if good else None
