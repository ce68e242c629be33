"""Which runtime a run uses, settled once on the run's first image (``DiDAEngine`` calls ``choose_runtime``).

``torch`` is the engine's own path, untouched. A named runtime is built and probed: it is used if its d equals
torch's within ``probe.EXACTNESS_BOUND``, and anything else is an error that names the fix. ``auto`` keeps torch
where no other runtime applies (another device, a reduced precision, a model that is a plain function, a run too
short to repay the choice) and otherwise builds every candidate of ``registry.AUTO_CANDIDATES``, drops those that
fail to build or to match torch on the probe, times the rest against torch on the run's own input, and keeps the
fastest; whatever fails, the run goes on with torch and the choice says why, in one line.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable

import torch

from . import RuntimeChoice, RuntimeRequest
from .context import BuildContext, RuntimeUnavailable
from .export import first_line
from .probe import EXACTNESS_BOUND, exact_enough, exactness
from .registry import AUTO_CANDIDATES, build
from .threads import physical_cores
from .timing import time_candidates

#: ``auto`` keeps torch for runs of fewer model passes: the choice costs about 200 passes (probe and timing, once
#: per engine) besides the first export, which a run of 1,000 passes (a B-scan on the paper's grids has 1,737)
#: repays at the speed-ups measured (docs/speed.md).
MIN_PASSES = 1000
#: Another runtime replaces torch only when it is at least this much faster (a tie is torch's: the original path).
MARGIN = 1.05
#: The batch size the candidates are timed at when the engine has none yet (its CPU choice comes later).
TIMING_BATCH_SIZE = 8


class Guarded:
    """A runtime's callable that, should it fail on a batch mid-run, says so once and runs that batch and every
    later one on torch; the choice is updated, so the run's record names what ran."""

    def __init__(self, forward: Callable, fallback: Callable, choice: RuntimeChoice):
        self.forward, self.fallback, self.choice = forward, fallback, choice
        self.fixed_batch_size = getattr(forward, "fixed_batch_size", None)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.forward is None:
            return self.fallback(x)
        try:
            return self.forward(x)
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 -- any failure of the runtime: the model itself takes over
            message = f"{self.choice.name} failed on a batch ({first_line(exc, 160)}): the run goes on with torch"
            warnings.warn(message, stacklevel=2)
            self.forward, self.choice.name, self.choice.reason = None, "torch", message
            return self.fallback(x)


def _unsupported(model, device: torch.device, dtype: torch.dtype) -> str | None:
    """Why no runtime but torch can run this engine's passes (None when one may)."""
    if device.type != "cpu":
        return f"the runtimes are for the CPU, and this run is on {device.type}"
    if dtype != torch.float32:
        return f"the runtimes compute in float32, and this run asked for {str(dtype).removeprefix('torch.')}"
    if not isinstance(model, torch.nn.Module):
        return "the model is a plain function, which only torch can run"
    return None


def _outputs(run: Callable, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return run(x).float()


def _timing_batch(probe: torch.Tensor, size: int) -> torch.Tensor:
    """``size`` of the probe's images (repeated when it has fewer), in the probe's memory format."""
    channels_last = not probe.is_contiguous() and probe.is_contiguous(memory_format=torch.channels_last)
    reps = -(-size // probe.shape[0])
    return torch.cat([probe] * reps)[:size].contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format)


class _Reference:
    """Torch's outputs of the probe (the measure), and, only when a candidate needs it, the same model's float64
    outputs (the truth that float32's rounding noise is measured against; None where the model cannot run in
    float64, such as an ONNX graph)."""

    def __init__(self, run: Callable, model, probe: torch.Tensor):
        self.run, self.model, self.probe = run, model, probe
        self.outputs = _outputs(run, probe)
        self._truth: torch.Tensor | None = None
        self._tried = False

    def truth(self) -> torch.Tensor | None:
        if not self._tried:
            self._tried = True
            try:
                twin = copy.deepcopy(self.model).double()
                with torch.inference_mode():
                    self._truth = twin(self.probe.double()).double()
            except Exception:  # noqa: BLE001 -- a model that cannot run in float64 is held to the bound alone
                self._truth = None
        return self._truth

    def accepts(self, candidate: torch.Tensor, score: str) -> bool:
        return exact_enough(self.outputs, candidate, score) or exact_enough(self.outputs, candidate, score,
                                                                           self.truth())

    def noise(self, score: str) -> str:
        """Torch's own distance from float64, in words (for a candidate measured against it)."""
        truth = self.truth()
        if truth is None:
            return ""
        return f"; torch's own d are {exactness(truth, self.outputs, score):.2g} from float64's"


def _probe(name: str, context: BuildContext, reference: _Reference, score: str):
    """Build runtime ``name`` and compare its d with torch's: (callable, exactness, accepted). A cached export that
    fails the comparison is made again once (a stale or damaged cache entry is never trusted)."""
    forward = build(name, context)
    out = _outputs(forward, reference.probe)
    if not reference.accepts(out, score) and context.refresh():
        forward = build(name, context)
        out = _outputs(forward, reference.probe)
    return forward, exactness(reference.outputs, out, score), reference.accepts(out, score)


def _exactness_note(ratio: float, reference: _Reference, score: str) -> str:
    if ratio <= EXACTNESS_BOUND:
        return f"d within {ratio:.2g} of torch's largest |d| (bound {EXACTNESS_BOUND:g})"
    return (f"d within {ratio:.2g} of torch's largest |d|, as close to float64's d as torch's own (float32 rounding)"
            f"{reference.noise(score)}")


def choose_runtime(request: RuntimeRequest, model, reference: Callable[[torch.Tensor], torch.Tensor],
                   probe: torch.Tensor, score: str, device: torch.device, dtype: torch.dtype, passes: int,
                   batch_size: int | None = None) -> RuntimeChoice:
    """The runtime for a run: ``reference`` is the engine's own torch call (the measure of exactness and speed),
    ``probe`` (N, C, H, W) the run's original image then masked images (``probe.probe_jobs``), ``passes`` the
    run's model passes, ``batch_size`` the engine's fixed batch size (None: not chosen yet)."""
    started = time.perf_counter()
    name = request.name
    if name == "torch":
        return RuntimeChoice("torch", "asked for (eager PyTorch, as before)", say=False)
    auto = name == "auto"
    why_not = _unsupported(model, device, dtype)
    if why_not is not None:
        if auto:
            return RuntimeChoice("torch", why_not)
        raise RuntimeUnavailable(f"runtime {name!r} cannot be used: {why_not}; choose the runtime torch or auto")
    if auto and passes < MIN_PASSES:
        return RuntimeChoice("torch", f"the run makes {passes} model passes, too few to repay choosing a runtime "
                                      f"(it pays from {MIN_PASSES})", say=False)
    context = BuildContext(model, probe[:1], request.package, physical_cores(), batch_size)
    try:
        ref = _Reference(reference, model, probe)
        forwards, exact, reasons = {}, {}, {}
        for candidate in AUTO_CANDIDATES if auto else (name,):
            try:
                forward, exact[candidate], accepted = _probe(candidate, context, ref, score)
            except RuntimeUnavailable as exc:
                reasons[candidate] = str(exc)
                continue
            except Exception as exc:  # noqa: BLE001 -- a runtime that fails on the probe is not used
                reasons[candidate] = f"{candidate} failed on the probe ({first_line(exc, 160)})"
                continue
            if accepted:
                forwards[candidate] = forward
            else:
                reasons[candidate] = (f"{candidate}'s d differs from torch's by {exact[candidate]:.2g} of the largest "
                                      f"|d| (the bound is {EXACTNESS_BOUND:g}){ref.noise(score)}")
        if not auto and name not in forwards:
            raise RuntimeUnavailable(f"runtime {name!r} cannot be used: {reasons[name]}; choose the runtime torch "
                                     "or auto")
        timings: dict[str, float] = {}
        if auto and forwards:
            timings = time_candidates({"torch": reference, **forwards},
                                      _timing_batch(probe, batch_size or TIMING_BATCH_SIZE))
        chosen, why = _pick(name, forwards, timings, batch_size or TIMING_BATCH_SIZE)
        choice = RuntimeChoice(chosen, why, threads=context.threads, timings=timings, exactness=exact)
        if chosen != "torch":
            choice.reason += f"; {_exactness_note(exact[chosen], ref, score)}{context.describe_source()}"
            choice.forward = Guarded(forwards[chosen], model, choice)
            choice.batch_size = getattr(forwards[chosen], "fixed_batch_size", None)
        choice.reason += "".join(f"; {reason}" for reason in dict.fromkeys(reasons.values()))  # each reason once
        choice.seconds = time.perf_counter() - started
        return choice
    finally:
        context.close()


def _pick(name: str, forwards: dict, timings: dict[str, float], batch_size: int) -> tuple[str, str]:
    """The runtime (a named one, or the fastest for ``auto``) and the start of the sentence saying why."""
    if name != "auto":
        return name, "asked for"
    if not forwards:
        return "torch", "no other runtime can run this model exactly here"
    best = max(forwards, key=timings.get)
    torch_ips, best_ips = timings["torch"], timings[best]
    if best_ips < MARGIN * torch_ips:
        return "torch", (f"no runtime was faster than torch on this input ({best} {best_ips:.1f} vs torch "
                         f"{torch_ips:.1f} images/s)")
    return best, (f"{best_ips / torch_ips:.2f} x torch's speed on this input ({best_ips:.1f} vs {torch_ips:.1f} "
                  f"images/s at batch {batch_size})")
