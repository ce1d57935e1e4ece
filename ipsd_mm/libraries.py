"""The OpenMMLab library each side of ipsd_mm needs, and the check that says what to install."""
import importlib
import logging

#: side: (the library's import name, its name, what to install)
LIBRARIES = {
    'seg': ('mmseg', 'MMSegmentation', 'pip install mmsegmentation==1.2.2 ftfy regex'),
    'det': ('mmdet', 'MMDetection', 'pip install mmdet==3.3.0'),
}


def require_library(side: str) -> None:
    """Import the library of ``side`` (``ipsd_mm.seg`` / ``ipsd_mm.det``), or fail with an
    ImportError that says what to install. The message is also logged first: MMEngine's
    ``custom_imports`` wraps any ImportError in its own "Failed to import custom modules ...
    set PYTHONPATH", which names neither the library nor the fix."""
    module, name, install = LIBRARIES[side]
    try:
        importlib.import_module(module)
    except Exception as e:  # noqa: BLE001  (missing, or installed and broken)
        message = (f'ipsd_mm.{side} needs {name} ({install}): `import {module}` failed with '
                   f'{type(e).__name__}: {e}')
        from mmengine.logging import print_log
        print_log(message, logger='current', level=logging.ERROR)
        raise ImportError(message) from e
