"""The DiDA engine: every masked image of every grid of an image, through the model in shared batches."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from . import memory_format as formats
from .devices import MAX_CUDA_BATCH_SIZE, BatchSizeTuner, resolve_device, resolve_precision
from .grid import DEFAULT_GRIDS, GridKey, cell_boxes, grid_shape, validate_grids
from .masks import FILL_NAMES, Fill, fill_image, mask_batch
from .result import DiDAResult
from .scores import check_score_mode, transform_scores

ScoreMode = str  # one of scores.SCORE_MODES: "probabilities", "logits", "log-odds"
GridCallback = Callable[[int, GridKey, np.ndarray, np.ndarray], None]


class DiDACancelled(Exception):
    """Raised when a run is cancelled; ``completed`` B-scans were finished (and yielded) before it stopped."""

    def __init__(self, completed: int):
        super().__init__(f"DiDA was cancelled after {completed} complete image(s); the image in progress was dropped")
        self.completed = completed


class ModelCallError(RuntimeError):
    """The model raised while scoring a batch (not out of memory): the model's own error, with where it happened."""


@dataclass
class Progress:
    """Where a run stands: finished images (B-scans) and model passes (masked images plus originals)."""

    images_done: int
    images_total: int | None
    passes_done: int
    passes_per_image: int


@dataclass(frozen=True)
class _Plan:
    """The jobs of one image: job 0 is the original (an empty box), then every cell of every grid, coarse first."""

    grids: tuple[GridKey, ...]
    boxes: torch.Tensor  # (J, 4) on the device
    starts: tuple[int, ...]  # first job of each grid
    shapes: tuple[tuple[int, int], ...]  # (rows, columns) of cells of each grid

    @property
    def num_jobs(self) -> int:
        return int(self.boxes.shape[0])


@dataclass
class _Item:
    index: int
    image: torch.Tensor
    fill: torch.Tensor
    plan: _Plan
    region: tuple[int, int, int, int]
    scores: torch.Tensor | None = None
    cursor: int = 0
    reported: int = 0  # grids already passed to on_grid


def _cancel_requested(cancel) -> bool:
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())


def as_image(image, name: str = "image") -> torch.Tensor:
    """Check one model-input image and return it as a float32 (C, H, W) tensor (never a view the caller owns)."""
    if isinstance(image, np.ndarray):
        if image.dtype == bool or not (np.issubdtype(image.dtype, np.number)) or np.iscomplexobj(image):
            raise TypeError(f"{name} has dtype {image.dtype}: DiDA needs real-valued pixels")
        t = torch.from_numpy(np.array(image, dtype=np.float32, copy=True))
    elif isinstance(image, torch.Tensor):
        if image.dtype == torch.bool or image.is_complex():
            raise TypeError(f"{name} has dtype {image.dtype}: DiDA needs real-valued pixels")
        t = image.detach().to(torch.float32, copy=True)
    else:
        raise TypeError(f"{name} is a {type(image).__name__}: give a (C, H, W) numpy array or torch tensor")
    if t.ndim != 3:
        hint = " (a grey 2D image needs a channel axis: image[None])" if t.ndim == 2 else ""
        raise ValueError(
            f"{name} has {t.ndim} dimension(s), shape {tuple(t.shape)}: DiDA explains one (C, H, W) image "
            f"in model-input form{hint}"
        )
    if min(t.shape) < 1:
        raise ValueError(f"{name} is empty, shape {tuple(t.shape)}")
    bad = int((~torch.isfinite(t)).sum())
    if bad:
        raise ValueError(
            f"{name} has {bad} non-finite pixel(s) (NaN or inf): repair or replace them (e.g. numpy.nan_to_num) "
            "before explaining"
        )
    return t


def _same_shape(item: _Item, first: tuple[int, ...] | None) -> tuple[int, ...]:
    """The shape every image of a volume must share (the first one's); a clear error for one that differs, before
    images of different shapes meet in one batch."""
    shape = tuple(item.image.shape[1:])
    if first is not None and shape != first:
        what = "their number of channels" if shape[0] != first[0] else "height x width"
        raise ValueError(
            f"image {item.index} has shape {shape} (C, H, W) but image 0 has {first}: they differ in {what}; "
            "every image of a volume must have the same shape"
        )
    return shape


def _check_region(region, height: int, width: int) -> tuple[int, int, int, int]:
    if region is None:
        return (0, 0, height, width)
    try:
        top, left, h, w = (int(v) for v in region)
    except (TypeError, ValueError):
        raise ValueError(f"region {region!r} must be (top, left, height, width)") from None
    if top < 0 or left < 0 or h < 1 or w < 1 or top + h > height or left + w > width:
        raise ValueError(f"region {(top, left, h, w)} does not lie inside the {height} x {width} image")
    return (top, left, h, w)


class DiDAEngine:
    """Runs DiDA for any classifier.

    ``model`` takes a float tensor (B, C, H, W) and returns (B, K) scores; a ``torch.nn.Module`` is put in eval
    mode and moved to the device, a plain function is called as it is. ``channels_last=None`` chooses the memory
    format by evidence on the first image (``memory_format.probe``: contiguous unless channels-last runs, agrees and
    is faster); True or False asks for one. Either way a batch that fails in one format is tried in the other.
    ``score`` is ``"probabilities"`` (softmax of the outputs, sigmoid for a single output), ``"logits"`` or
    ``"log-odds"`` (``scores.py`` says when to choose which).
    ``fill`` is what a masked cell shows, in the model-input domain: a number, one per channel, ``"mean"``,
    ``"blur"`` or ``"background"`` (``masks.fill_image``). ``batch_size=None`` picks one for the device (on CUDA
    from its free memory, and an out-of-memory
    error halves it and retries; on the CPU the fastest of a few sizes, timed on the first batches of real work).
    ``precision`` is the model's compute dtype (``"auto"``: float16 on CUDA, float32 elsewhere); scores are always
    compared in float32. ``compile`` wraps the model in ``torch.compile`` (``True`` or a mode such as
    ``"reduce-overhead"`` for CUDA graphs), falling back to eager if that fails.
    """

    def __init__(
        self,
        model: Callable[[torch.Tensor], torch.Tensor],
        device: str | torch.device = "auto",
        score: ScoreMode = "probabilities",
        fill: Fill = 0.0,
        batch_size: int | None = None,
        precision: str = "auto",
        channels_last: bool | None = None,
        compile: bool | str = False,
        class_names: Sequence[str] | None = None,
    ):
        if not callable(model):
            raise TypeError(f"model is a {type(model).__name__}, not a callable taking (B, C, H, W) images")
        check_score_mode(score)
        if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1):
            raise ValueError(f"batch_size {batch_size!r} must be a positive integer or None")
        if isinstance(fill, str) and fill not in FILL_NAMES:
            raise ValueError(f"fill {fill!r} is not known: use a number, one number per channel, "
                             f"{', '.join(map(repr, FILL_NAMES))}")
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        self.score = score
        self.fill = fill
        self.class_names = tuple(class_names) if class_names is not None else None
        if isinstance(model, torch.nn.Module):
            model.eval()
            model.to(self.device)
        self.model = model
        #: the memory format of the model and its batches (None until the probe on the first image settled it)
        self.memory_format: torch.memory_format | None = None
        self.memory_format_note: str | None = None  # how it was chosen, for run records
        if channels_last is not None:
            self.memory_format = formats.CHANNELS_LAST if channels_last and self.device.type != "mps" \
                else formats.CONTIGUOUS
            self.memory_format_note = f"{formats.NAMES[self.memory_format]} (asked for)"
            formats.convert(model, self.memory_format)
        self._forward_fn = model
        self._static_batch = False
        if compile:
            mode = compile if isinstance(compile, str) else None
            try:
                self._forward_fn = torch.compile(model, mode=mode, dynamic=False)
                self._static_batch = True
            except Exception as exc:  # torch.compile is unavailable on some builds and platforms
                warnings.warn(f"torch.compile is unavailable ({exc}); running the model eagerly", stacklevel=2)
        if batch_size is None:  # a model that takes one batch size only (a fixed-batch ONNX or exported program)
            batch_size = getattr(model, "fixed_batch_size", None)
        self._batch_size = int(batch_size) if batch_size is not None else None
        self._tuner: BatchSizeTuner | None = None
        self._plans: dict[tuple, _Plan] = {}

    # -- model calls ---------------------------------------------------------------------------------------------

    @property
    def batch_size(self) -> int | None:
        """The batch size in use (``None`` until chosen automatically on the first image)."""
        return self._batch_size

    def _autocast(self):
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def _call_model(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), self._autocast():
            if self.device.type == "cuda":
                with torch.backends.cudnn.flags(enabled=True, benchmark=True):
                    return self._call_compiled(x)
            return self._call_compiled(x)

    def _call_compiled(self, x: torch.Tensor):
        if self._forward_fn is self.model:
            return self.model(x)
        try:
            return self._forward_fn(x)
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:
            warnings.warn(f"torch.compile failed ({type(exc).__name__}: {exc}); running the model eagerly", stacklevel=3)
            self._forward_fn = self.model
            self._static_batch = False
            return self.model(x)

    def _settle_format(self, batch: torch.Tensor) -> None:
        """Choose the memory format on a real batch, once (``memory_format.probe``)."""
        if self.memory_format is None:
            choice = formats.probe(self._call_model, self.model, batch[: formats.probe_images(self.device)])
            self.memory_format, self.memory_format_note = choice.format, choice.reason

    def _in_other_format(self, x: torch.Tensor, exc: Exception):
        """A batch that failed, tried in the other memory format (kept when it works), else the model's error."""
        if self.device.type != "mps":
            retried = formats.in_other_format(self._call_model, self.model, x, self.memory_format, exc)
            if retried is not None:
                out, choice = retried
                self.memory_format, self.memory_format_note = choice.format, choice.reason
                return out
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        text = lines[-1][:300] if lines else "no message"  # TorchScript puts the model's own message last
        raise ModelCallError(
            f"the model failed on a batch of {x.shape[0]} image(s) of shape {tuple(x.shape[1:])} "
            f"({type(exc).__name__}: {text}): check that it works on such inputs"
        ) from exc

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """The model's float32 scores (B, K) of a batch, in the engine's score mode, checked for shape."""
        return transform_scores(self.outputs(x), self.score)

    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        """The model's raw float32 outputs (B, K) of a batch (no score transform), checked for shape."""
        self._settle_format(x)
        x = x.contiguous(memory_format=self.memory_format)
        b = x.shape[0]
        pad = 0
        if self._static_batch and self._batch_size and b < self._batch_size:
            pad = self._batch_size - b  # compiled graphs and CUDA graphs want one fixed shape
            x = torch.cat([x, x[-1:].expand(pad, *x.shape[1:])]).contiguous(memory_format=self.memory_format)
        try:
            out = self._call_model(x)
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:  # the model's own failure, named as such (not a traceback from deep inside it)
            out = self._in_other_format(x, exc)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"the model returned a {type(out).__name__}: it must return a (B, K) tensor of scores")
        if out.ndim != 2 or out.shape[0] != x.shape[0] or out.shape[1] < 1:
            raise ValueError(
                f"the model returned scores of shape {tuple(out.shape)} for a batch of {x.shape[0]} images: "
                "it must return (B, K), one row of K class scores per image"
            )
        return out[:b].float()

    def _choose_batch_size(self, item: _Item) -> int:
        if self.device.type != "cuda":
            self._tuner = BatchSizeTuner()
            return self._tuner.size
        probe = 8
        x = mask_batch(item.image, item.fill, item.plan.boxes[:probe], memory_format=self.memory_format)
        torch.cuda.synchronize(self.device)
        before = torch.cuda.memory_allocated(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        self.scores(x)
        torch.cuda.synchronize(self.device)
        per_image = max(1, (torch.cuda.max_memory_allocated(self.device) - before) // probe)
        free, _ = torch.cuda.mem_get_info(self.device)
        fit = int(0.5 * free // per_image)
        return int(max(1, min(MAX_CUDA_BATCH_SIZE, 1 << max(0, fit.bit_length() - 1))))

    # -- planning ------------------------------------------------------------------------------------------------

    def _plan(self, region: tuple[int, int, int, int], grids) -> _Plan:
        top, left, h, w = region
        sizes = validate_grids(grids, h, w)
        key = (region, sizes)
        plan = self._plans.get(key)
        if plan is None:
            boxes = [np.zeros((1, 4), dtype=np.int64)]
            starts = []
            offset = np.array([top, top, left, left], dtype=np.int64)
            for g in sizes:
                starts.append(sum(len(b) for b in boxes))
                boxes.append(cell_boxes(h, w, g) + offset)
            plan = _Plan(sizes, torch.from_numpy(np.concatenate(boxes)).to(self.device), tuple(starts),
                         tuple(grid_shape(g) for g in sizes))
            self._plans[key] = plan
        return plan

    def _start(self, image, index: int, grids, region) -> _Item:
        x = as_image(image, name=f"image {index}")
        _, h, w = x.shape
        reg = _check_region(region, h, w)
        plan = self._plan(reg, grids)
        if self.device.type == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
        else:
            x = x.to(self.device)
        fill = fill_image(x, self.fill, reg)
        if self.memory_format is None:  # settled on the first image's own masked images
            self._settle_format(mask_batch(x[None], fill[None], plan.boxes[: formats.probe_images(self.device)]))
        # Kept as (1, C, H, W) in the model's memory format so that masks broadcast straight into that layout.
        source = x[None].contiguous(memory_format=self.memory_format)
        return _Item(index, source, fill[None], plan, reg)

    # -- public API ----------------------------------------------------------------------------------------------

    def explain(
        self,
        image,
        grids: Sequence[GridKey] = DEFAULT_GRIDS,
        region: tuple[int, int, int, int] | None = None,
        on_grid: GridCallback | None = None,
        cancel=None,
    ) -> DiDAResult:
        """DiDA of one (C, H, W) image in model-input form: the scores of the original and of every masked image.

        ``grids`` are grid keys: sizes n (the paper's aligned grids, the default) or shifted grids, such as the
        evidence schedule ``EVIDENCE_GRIDS``. ``region`` = (top, left, height, width) limits the grids to part of
        the input (a letterboxed B-scan); ``on_grid(index, n, deltas, base_scores)`` is called as soon as grid n
        is done (coarsest first).
        """
        return next(self.explain_volume([image], grids=grids, region=region, on_grid=on_grid, cancel=cancel))

    def explain_volume(
        self,
        images: Iterable,
        grids: Sequence[GridKey] = DEFAULT_GRIDS,
        region: tuple[int, int, int, int] | None = None,
        progress: Callable[[Progress], None] | None = None,
        cancel=None,
        on_grid: GridCallback | None = None,
        total: int | None = None,
    ) -> Iterator[DiDAResult]:
        """DiDA of a stack of images (B-scans), yielded one result per image in order.

        Images are read from ``images`` lazily, and only the few whose masked images share the batch in flight are
        held, so memory stays bounded for any number of B-scans. ``cancel`` (a callable or a ``threading.Event``)
        is checked before every batch; when set, ``DiDACancelled`` is raised and the image in progress is dropped,
        so every result that was yielded is complete.
        """
        if total is None and hasattr(images, "__len__"):
            total = len(images)
        source = iter(images)
        active: list[_Item] = []
        exhausted = False
        started = completed = passes = 0
        num_classes = None
        first_shape = None
        while True:
            if _cancel_requested(cancel):
                raise DiDACancelled(completed)
            pending = sum(item.plan.num_jobs - item.cursor for item in active)
            while not exhausted and (not active or pending < (self._batch_size or 1)):
                try:
                    image = next(source)
                except StopIteration:
                    exhausted = True
                    break
                item = self._start(image, started, grids, region)
                first_shape = _same_shape(item, first_shape)
                started += 1
                active.append(item)
                pending += item.plan.num_jobs
                if self._batch_size is None:
                    self._batch_size = self._choose_batch_size(item)
            if not active:
                return
            pieces = []
            room = self._batch_size
            for item in active:
                if room == 0:
                    break
                take = min(room, item.plan.num_jobs - item.cursor)
                if take > 0:
                    pieces.append((item, item.cursor, item.cursor + take))
                    room -= take
            batch = self._masked(pieces)
            batch_started = self._tuner.start() if self._tuner else 0.0
            try:
                scores = self.scores(batch)
            except torch.OutOfMemoryError:
                del batch
                if self._batch_size == 1:
                    raise MemoryError(
                        "the model runs out of device memory even one image at a time: free GPU memory "
                        "(close other programs) or use device='cpu'"
                    ) from None
                self._batch_size = max(1, self._batch_size // 2)
                self._tuner = None
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            if self._tuner is not None:
                self._tuner.record(len(batch), batch_started)
                self._batch_size = self._tuner.size
                if self._tuner.best is not None:
                    self._tuner = None
            if num_classes is None:
                num_classes = scores.shape[1]
            elif scores.shape[1] != num_classes:
                raise ValueError(
                    f"the model returned {scores.shape[1]} scores per image after returning {num_classes}: "
                    "it must return the same K classes for every batch"
                )
            offset = 0
            for item, start, stop in pieces:
                if item.scores is None:
                    item.scores = torch.empty((item.plan.num_jobs, num_classes), dtype=torch.float32, device=self.device)
                item.scores[start:stop] = scores[offset : offset + stop - start]
                offset += stop - start
                item.cursor = stop
                if on_grid is not None:
                    self._report_grids(item, on_grid)
            passes += len(batch)
            finished = []
            while active and active[0].cursor == active[0].plan.num_jobs:
                finished.append(self._finish(active.pop(0)))
            completed += len(finished)
            if progress is not None:
                progress(Progress(completed, total, passes, pieces[0][0].plan.num_jobs))
            yield from finished

    # -- batch assembly and results ------------------------------------------------------------------------------

    def _masked(self, pieces) -> torch.Tensor:
        if len(pieces) == 1:
            item, start, stop = pieces[0]
            return mask_batch(item.image, item.fill, item.plan.boxes[start:stop], memory_format=self.memory_format)
        images = torch.cat([p[0].image for p in pieces])
        fills = torch.cat([p[0].fill.expand_as(p[0].image) for p in pieces])
        index = torch.cat([torch.full((stop - start,), k, dtype=torch.long, device=self.device)
                           for k, (_, start, stop) in enumerate(pieces)])
        boxes = torch.cat([item.plan.boxes[start:stop] for item, start, stop in pieces])
        return mask_batch(images, fills, boxes, index, self.memory_format)

    def _check_finite(self, scores: np.ndarray, index: int) -> None:
        bad = int((~np.isfinite(scores)).sum())
        if bad:
            raise ValueError(
                f"the model returned {bad} non-finite score(s) (NaN or inf) for image {index}: check the model's "
                "weights and that the input is normalised the way the model expects"
            )

    def _deltas(self, scores: np.ndarray, base: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        return (base[None, :] - scores).astype(np.float32).T.reshape(-1, *shape)

    def _report_grids(self, item: _Item, on_grid: GridCallback) -> None:
        plan = item.plan
        while item.reported < len(plan.grids):
            g = item.reported
            shape = plan.shapes[g]
            stop = plan.starts[g] + shape[0] * shape[1]
            if item.cursor < stop:
                return
            rows = torch.cat([item.scores[:1], item.scores[plan.starts[g] : stop]]).cpu().numpy()
            self._check_finite(rows, item.index)
            on_grid(item.index, plan.grids[g], self._deltas(rows[1:], rows[0], shape), rows[0].copy())
            item.reported += 1

    def _finish(self, item: _Item) -> DiDAResult:
        scores = item.scores.cpu().numpy()  # the one device-to-host copy of this image's scores
        self._check_finite(scores, item.index)
        base = scores[0]
        plan = item.plan
        deltas = {g: self._deltas(scores[s : s + rows * cols], base, (rows, cols))
                  for g, s, (rows, cols) in zip(plan.grids, plan.starts, plan.shapes)}
        if self.class_names is not None and len(self.class_names) != base.shape[0]:
            raise ValueError(
                f"the model returns {base.shape[0]} scores but {len(self.class_names)} class names were given"
            )
        return DiDAResult(
            base_scores=base.copy(),
            deltas=deltas,
            image_shape=tuple(item.image.shape[2:]),
            region=item.region,
            score=self.score,
            index=item.index,
            class_names=self.class_names,
        )
