"""The DiDA engine: every masked image of every grid of an image, through the model in shared batches."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..runtime import RuntimeChoice, RuntimeRequest
from . import memory_format as formats
from .devices import MAX_CUDA_BATCH_SIZE, BatchSizeTuner, resolve_device, resolve_precision
from .estimators import LEAVE_ONE_OUT, Shapley, as_estimator
from .grid import DEFAULT_GRIDS, GridKey, validate_grids
from .inputs import as_image, cancel_requested, check_region, same_shape
from .masks import FILL_NAMES, Fill, fill_image, mask_batch
from .plan import JobPlan, leave_one_out_plan
from .result import DiDAResult
from .scores import check_score_mode, transform_scores
from .shapley import shapley_plan

__all__ = ["DiDACancelled", "DiDAEngine", "GridCallback", "ModelCallError", "Progress", "as_image"]

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


@dataclass
class _Item:
    index: int
    image: torch.Tensor
    fill: torch.Tensor
    plan: JobPlan
    region: tuple[int, int, int, int]
    scores: torch.Tensor | None = None
    cursor: int = 0
    reported: int = 0  # grids already passed to on_grid


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
    ``"reduce-overhead"`` for CUDA graphs), falling back to eager if that fails. ``runtime`` runs the model's passes
    on another exact runtime (``DiDALib.runtime``: ``"auto"`` picks the fastest on the first image, ``"torch"``, the
    default, is the model as it is); ``runtime_choice`` then says which and why.
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
        runtime: str | RuntimeRequest = "torch",
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
        self._plans: dict[tuple, JobPlan] = {}
        self.runtime_request = runtime if isinstance(runtime, RuntimeRequest) else RuntimeRequest(runtime)
        if compile and self.runtime_request.name != "torch":
            raise ValueError("compile=True and a runtime were both given: use runtime='compile' alone")
        #: the runtime the passes run on and why (``RuntimeChoice``), settled on the first image
        self.runtime_choice: RuntimeChoice | None = None

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

    def _settle_runtime(self, item: _Item, images: int | None) -> None:
        """Choose the runtime once, on the first image's own masked images (``runtime/choose.py``)."""
        from ..runtime.choose import choose_runtime
        from ..runtime.probe import probe_jobs

        torch_path = self.runtime_request.name == "torch"  # nothing to probe: the engine's own path
        probe = None if torch_path else self._masked([(item, j, j + 1) for j in probe_jobs(item.plan.num_jobs)])
        choice = choose_runtime(self.runtime_request, self.model, self.outputs, probe, self.score, self.device,
                                self.dtype, item.plan.num_jobs * (images or 1), self._batch_size)
        if choice.forward is not None:
            self._forward_fn, self._static_batch = choice.forward, False
            self._batch_size = choice.batch_size or self._batch_size
        self.runtime_choice = choice

    def _choose_batch_size(self, item: _Item) -> int:
        if self.device.type != "cuda":
            self._tuner = BatchSizeTuner()
            return self._tuner.size
        probe = 8
        x = mask_batch(item.image, item.fill, item.plan.masks(0, min(probe, item.plan.num_jobs)),
                       memory_format=self.memory_format)
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

    def _plan(self, shape: tuple[int, int], region: tuple[int, int, int, int], grids, estimator) -> JobPlan:
        top, left, h, w = region
        sizes = validate_grids(grids, h, w)
        key = (shape, region, sizes, estimator)
        plan = self._plans.get(key)
        if plan is None:
            if isinstance(estimator, Shapley):
                plan = shapley_plan(shape, region, sizes, estimator, self.device)
            else:
                plan = leave_one_out_plan(shape, region, sizes, self.device)
            self._plans[key] = plan
        return plan

    def _start(self, image, index: int, grids, region, estimator) -> _Item:
        x = as_image(image, name=f"image {index}")
        _, h, w = x.shape
        reg = check_region(region, h, w)
        plan = self._plan((h, w), reg, grids, estimator)
        if self.device.type == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
        else:
            x = x.to(self.device)
        fill = fill_image(x, self.fill, reg)
        if self.memory_format is None:  # settled on the first image's own masked images
            probe = min(formats.probe_images(self.device), plan.num_jobs)
            self._settle_format(mask_batch(x[None], fill[None], plan.masks(0, probe)))
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
        estimator: str | Shapley | None = LEAVE_ONE_OUT,
    ) -> DiDAResult:
        """DiDA of one (C, H, W) image in model-input form: the scores of the original and every grid's values.

        ``grids`` are grid keys: sizes n (the paper's aligned grids, the default) or shifted grids, such as the
        evidence schedule ``EVIDENCE_GRIDS``. ``region`` = (top, left, height, width) limits the grids to part of
        the input (a letterboxed B-scan); ``on_grid(index, n, values, base_scores)`` is called as soon as grid n
        is done (coarsest first). ``estimator``: ``"leave-one-out"`` (the paper's d, one pass per cell) or
        ``"shapley"`` / a ``Shapley`` (signed Shapley values from permutation walks, ``shapley.py``).
        """
        return next(self.explain_volume([image], grids=grids, region=region, on_grid=on_grid, cancel=cancel,
                                        estimator=estimator))

    def explain_volume(
        self,
        images: Iterable,
        grids: Sequence[GridKey] = DEFAULT_GRIDS,
        region: tuple[int, int, int, int] | None = None,
        progress: Callable[[Progress], None] | None = None,
        cancel=None,
        on_grid: GridCallback | None = None,
        total: int | None = None,
        estimator: str | Shapley | None = LEAVE_ONE_OUT,
    ) -> Iterator[DiDAResult]:
        """DiDA of a stack of images (B-scans), yielded one result per image in order.

        Images are read from ``images`` lazily, and only the few whose masked images share the batch in flight are
        held, so memory stays bounded for any number of B-scans. ``cancel`` (a callable or a ``threading.Event``)
        is checked before every batch; when set, ``DiDACancelled`` is raised and the image in progress is dropped,
        so every result that was yielded is complete. ``estimator`` as in ``explain``.
        """
        estimator = as_estimator(estimator)
        if total is None and hasattr(images, "__len__"):
            total = len(images)
        source = iter(images)
        active: list[_Item] = []
        exhausted = False
        started = completed = passes = 0
        num_classes = None
        first_shape = None
        while True:
            if cancel_requested(cancel):
                raise DiDACancelled(completed)
            pending = sum(item.plan.num_jobs - item.cursor for item in active)
            while not exhausted and (not active or pending < (self._batch_size or 1)):
                try:
                    image = next(source)
                except StopIteration:
                    exhausted = True
                    break
                item = self._start(image, started, grids, region, estimator)
                first_shape = same_shape(item.index, item.image, first_shape)
                started += 1
                active.append(item)
                pending += item.plan.num_jobs
                if self.runtime_choice is None:
                    self._settle_runtime(item, total)
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
            return mask_batch(item.image, item.fill, item.plan.masks(start, stop), memory_format=self.memory_format)
        images = torch.cat([p[0].image for p in pieces])
        fills = torch.cat([p[0].fill.expand_as(p[0].image) for p in pieces])
        index = torch.cat([torch.full((stop - start,), k, dtype=torch.long, device=self.device)
                           for k, (_, start, stop) in enumerate(pieces)])
        hidden = torch.cat([item.plan.masks(start, stop) for item, start, stop in pieces])
        return mask_batch(images, fills, hidden, index, self.memory_format)

    def _check_finite(self, scores: np.ndarray, index: int) -> None:
        bad = int((~np.isfinite(scores)).sum())
        if bad:
            raise ValueError(
                f"the model returned {bad} non-finite score(s) (NaN or inf) for image {index}: check the model's "
                "weights and that the input is normalised the way the model expects"
            )

    def _report_grids(self, item: _Item, on_grid: GridCallback) -> None:
        grids = item.plan.grids
        while item.reported < len(grids):
            segment = grids[item.reported]
            if item.cursor < segment.stop:
                return
            rows = item.scores[: segment.stop].cpu().numpy()
            self._check_finite(rows, item.index)
            on_grid(item.index, segment.key, segment.values(rows)[0], rows[0].copy())
            item.reported += 1

    def _finish(self, item: _Item) -> DiDAResult:
        scores = item.scores.cpu().numpy()  # the one device-to-host copy of this image's scores
        self._check_finite(scores, item.index)
        base = scores[0]
        values = {s.key: s.values(scores) for s in item.plan.grids}
        if self.class_names is not None and len(self.class_names) != base.shape[0]:
            raise ValueError(
                f"the model returns {base.shape[0]} scores but {len(self.class_names)} class names were given"
            )
        stderr = {g: se for g, (_, se) in values.items() if se is not None}
        return DiDAResult(
            base_scores=base.copy(),
            deltas={g: d for g, (d, _) in values.items()},
            image_shape=tuple(item.image.shape[2:]),
            region=item.region,
            score=self.score,
            index=item.index,
            class_names=self.class_names,
            estimator=item.plan.estimator,
            stderr=stderr or None,
        )
