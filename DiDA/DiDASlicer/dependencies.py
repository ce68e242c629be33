"""Installing what DiDA needs inside Slicer, after asking: PyTorch and torchvision through the PyTorch extension
first, then the module's ``Resources/requirements.txt`` (``DiDALib.mrml.requirements`` says why in this order)."""

import logging

import slicer
from slicer.i18n import tr as _


def ensure_dependencies(requirements_path: str, ask: bool = True) -> bool:
    """Install what is missing (an older torch counts as missing), after asking; False if the user declines or
    Slicer runs its tests (nothing is installed then)."""
    from DiDALib.mrml.requirements import TORCH_VERSION, TORCHVISION_VERSION, read_requirements, torch_unmet, unmet

    torch_needed = torch_unmet()
    missing = unmet(read_requirements(requirements_path))
    if not torch_needed and not missing:
        return True
    if slicer.app.testingEnabled():
        logging.info(f"Testing mode: not installing {', '.join(torch_needed + missing)}")
        return False
    if torch_needed:
        try:
            import PyTorchUtils
        except ImportError:
            raise RuntimeError(_("DiDA needs the PyTorch extension: install it from the Extensions Manager, "
                                 "restart Slicer, and try again.")) from None
    packages = [_("{req} (through the PyTorch extension)").format(req=req) for req in torch_needed] + missing
    if ask and not slicer.util.confirmOkCancelDisplay(
            _("DiDA needs these Python packages, which will be downloaded and installed now (this can take "
              "several minutes):\n\n{packages}").format(packages="\n".join(f"- {p}" for p in packages)),
            _("DiDA - Install Python packages")):
        return False
    if torch_needed:
        torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False,
                                                              torchVersionRequirement=TORCH_VERSION,
                                                              torchvisionVersionRequirement=TORCHVISION_VERSION)
        if torch is None:
            raise RuntimeError(_("PyTorch could not be installed: see the Python console for the reason."))
    if missing:
        try:
            import slicer.packaging as packaging  # Slicer 5.12+: hasattr(slicer, "packaging") is False until imported
        except ImportError:
            slicer.util.pip_install(missing)
        else:
            packaging.pip_ensure(packaging.load_requirements(requirements_path), prompt_install=False,
                                 requester="DiDA")
    return True
