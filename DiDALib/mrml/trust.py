"""Whether a model package may run its own code (``architecture: "python:<file.py>:<callable>"``, or a TorchScript or
exported program that calls more than tensor operators: ``models.graph_check``), decided in the Slicer module
without Qt and without torch: the module asks the user with the sentence ``CodeTrust.question`` gives (a dialog
that names the file), and only after a Yes does the run's ``ModelRequest`` carry ``trust_code=True``.

Consent is for one file with one content: a package whose code file changes after the user agreed is asked about
again (the file's SHA-256 is what was agreed to). Nothing is remembered beyond the Slicer session.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..models.python_code import PYTHON_REASON, code_to_trust, consent_for
from ..worker.protocol import ModelRequest


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class CodeTrust:
    """The code files the user agreed to run in this Slicer session (path and content)."""

    def __init__(self) -> None:
        self._agreed: set[tuple[str, str]] = set()

    def _key(self, code: Path) -> tuple[str, str]:
        return str(code.resolve()), _digest(code)

    def code_file(self, folder: str | Path) -> Path | None:
        """The Python file the package would run, or None (read from ``model.json`` only; nothing is run)."""
        return code_to_trust(folder)

    def question(self, folder: str | Path) -> str | None:
        """The confirmation to show before running a package, or None when it runs no code of its own or the user
        already agreed to that file as it is now."""
        needed = consent_for(folder)
        if needed is None or self._key(needed.code_file) in self._agreed:
            return None
        name, code = Path(folder).name, needed.code_file
        program = needed.reason.removeprefix("this model package's ")
        what = (f"builds its network with its own Python code, {code}" if needed.reason == PYTHON_REASON else
                f"runs {code}, whose {program}")
        return (f"The model package {name} {what}. That file runs with your user account's rights and can do "
                "anything you can. Run it only if you trust where the package came from. Run it?")

    def agree(self, folder: str | Path) -> None:
        """The user said Yes to the package's code file as it is now."""
        code = self.code_file(folder)
        if code is not None:
            self._agreed.add(self._key(code))

    def declined(self, folder: str | Path) -> str:
        """The status line after a No: nothing ran, and why."""
        code = self.code_file(folder)
        return (f"Nothing was run: the model package's own code ({code.name if code else 'its Python file'}) "
                "runs only after you agree to it.")

    def request(self, folder: str | Path) -> ModelRequest:
        """The run's model request: ``trust_code`` only for a package whose code file the user agreed to."""
        code = self.code_file(folder)
        return ModelRequest(str(folder), trust_code=code is not None and self._key(code) in self._agreed)
