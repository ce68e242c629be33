"""``--runtime``: the option of the commands that run a model, and the one line that says which runtime a run
chose and why (``DiDALib.runtime``)."""

from __future__ import annotations

from collections.abc import Callable

from ..runtime import RUNTIMES
from .common import note


def add_runtime_option(parser) -> None:
    """Add ``--runtime`` to a subcommand's parser."""
    parser.add_argument("--runtime", default="auto", choices=RUNTIMES,
                        help="what runs the model on a CPU: auto (default: the fastest runtime whose d equal "
                        "torch's, tried on the first B-scan; torch when none is), torch (eager PyTorch), onnxruntime, "
                        "openvino or compile (torch.compile)")


def announcing_runtime(explainer, progress: Callable | None, bar=None, quiet: bool = False) -> Callable:
    """``progress`` that also says, once, which runtime the run chose and why (on stderr, above a progress bar;
    not with ``--quiet``, whose stderr holds nothing but a failure's one line: ``run.json`` has it)."""
    said = [False]

    def call(p) -> None:
        choice = explainer.runtime_choice
        if not said[0] and choice is not None:
            said[0] = True
            if choice.say and not quiet and bar is not None:
                bar.write(f"dida: note: {choice.describe()}", file=bar.fp)
            elif choice.say and not quiet:
                note(choice.describe())
        if progress is not None:
            progress(p)

    return call
