"""Where the gateway's XML schemas are, found the same way in a checkout and in a wheel.

The schemas live in the repository's top-level ``xsd/`` folder and ship in the wheel as package
data under ``gateway/xsd`` (hatch ``force-include``), so an installed gateway runs from any
directory. ``shipped_xsd_dir`` asks ``importlib.resources`` for ``gateway/xsd`` and, in a source
checkout (or an editable install) where that folder does not exist, uses ``xsd/`` beside the
``gateway`` package. The ``documents.xsd_dir`` setting names another folder; "" means these.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from gateway.errors import SettingsError

PACKAGE_DATA = "xsd"
"""The schemas' folder inside the ``gateway`` package of an installed wheel."""


def shipped_xsd_dir() -> Path:
    """The folder of the schemas shipped with the gateway."""
    package = resources.files("gateway")
    if not isinstance(package, Path):  # e.g. a zip import: the schemas need real files
        raise SettingsError(
            ["documents.xsd_dir: the gateway is not installed as files; set documents.xsd_dir"]
        )
    for candidate in (package / PACKAGE_DATA, package.parent / "xsd"):
        if candidate.is_dir():
            return candidate
    raise SettingsError(
        [f"documents.xsd_dir: no schemas shipped with the gateway (looked in {package})"]
    )


def xsd_dir(configured: str) -> Path:
    """The schemas' folder: ``configured`` (the setting) or, when "", the shipped one."""
    return Path(configured) if configured else shipped_xsd_dir()
