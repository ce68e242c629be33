"""Installing what DiDA needs inside Slicer, after asking, in two sets (``DiDALib.mrml.requirements``): reading OCT
files (``Resources/requirements-read.txt``, and OCT-Converter for a vendor file that needs it), which never
installs PyTorch, and explaining (PyTorch and torchvision through the PyTorch extension first, then
``Resources/requirements-explain.txt``)."""

import logging
import os

import slicer
from slicer.i18n import tr as _

#: The module's Resources folder (beside this folder, in a checkout and in an installed extension).
RESOURCES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Resources")


def ensure_reading(path=None) -> bool:
    """What reading OCT files (``path``) needs, installed after one question; False if the user declines (nothing
    is installed then) or Slicer runs its tests."""
    from DiDALib.mrml.requirements import reading_plan

    return ensure(reading_plan(RESOURCES, path))


def ensure_explaining() -> bool:
    """What explaining needs (an older torch counts as missing), installed after one question; False as above."""
    from DiDALib.mrml.requirements import explaining_plan

    return ensure(explaining_plan(RESOURCES))


def ensure(plan) -> bool:
    """Install a ``DiDALib.mrml.requirements.InstallPlan`` after asking its question once."""
    if plan.empty:
        return True
    if slicer.app.testingEnabled():
        logging.info(f"Testing mode: not installing {', '.join(plan.torch + plan.packages)}")
        return False
    if plan.torch:
        try:
            import PyTorchUtils
        except ImportError:
            raise RuntimeError(_("DiDA needs the PyTorch extension: install it from the Extensions Manager, "
                                 "restart Slicer, and try again.")) from None
    if not slicer.util.confirmOkCancelDisplay(plan.question(), _("DiDA - Install Python packages")):
        return False
    if plan.torch:
        from DiDALib.mrml.requirements import TORCH_VERSION, TORCHVISION_VERSION

        torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False,
                                                              torchVersionRequirement=TORCH_VERSION,
                                                              torchvisionVersionRequirement=TORCHVISION_VERSION)
        if torch is None:
            raise RuntimeError(_("PyTorch could not be installed: see the Python console for the reason."))
    if plan.packages:
        try:
            import slicer.packaging as packaging  # Slicer 5.12+: hasattr(slicer, "packaging") is False until imported
        except ImportError:
            slicer.util.pip_install(plan.packages)
        else:
            packaging.pip_ensure(plan.packages, prompt_install=False, requester="DiDA")
    return True
