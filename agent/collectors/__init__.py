"""Telemetry collectors, one module per source; importing this package registers them all.

Every public module here (not ``base``, not ``_private``) is a collector or a
sub-package of one, and registers itself with :func:`~.base.register` on import, so a new
source is one new file and no list to edit.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base" and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
