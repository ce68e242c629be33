"""``onnxruntime``: an ONNX graph on onnxruntime's CPU provider, tuned for DiDA's stream of equal batches.

One operator thread per physical core (``threads.py``), operators run one after the other (DiDA's CNN graphs are
chains: a second pool of threads for parallel branches only competes), and the pool's threads sleep between calls
instead of spinning, so the masks of the next batch (built by torch on the same cores) are not slowed. Every graph
optimisation onnxruntime has is on; none of them changes the arithmetic's precision (float32 throughout).
"""

from __future__ import annotations

from pathlib import Path

from .context import BuildContext, RuntimeUnavailable


def session(source: Path | bytes, threads: int):
    """An onnxruntime CPU session for ``source`` (an ONNX file or its bytes) with DiDA's tuning."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise RuntimeUnavailable("onnxruntime is not installed (pip install onnxruntime)") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only (its warnings about unused initialisers would alarm users)
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    model = str(source) if isinstance(source, Path) else source
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def build(context: BuildContext):
    """The model on a tuned onnxruntime session: the package's own ONNX file, or the torch model's export."""
    from ..models.fixed_batch import batch_dimension
    from ..models.onnx_model import OnnxModel

    path = context.onnx_file()
    s = session(path, context.threads)
    return OnnxModel(path, s, batch_dimension(list(s.get_inputs()[0].shape)))
