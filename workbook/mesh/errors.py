"""Errors of the mesh package: bad configuration files and refused connections.

``MeshConfigError`` (a ``ConfigError``) names the file, the resource and the field path;
``MtlsRefused`` says why a connection or a certificate was refused (another CA, expired,
plaintext under STRICT...).
"""

from __future__ import annotations

from workbook.core.errors import ConfigError, WorkbookError


class MeshError(WorkbookError):
    """Base class of the mesh package's errors."""


class MeshConfigError(MeshError, ConfigError):
    """A mesh configuration file cannot be read: invalid YAML, not a resource, unknown kind.

    ``source`` is the file, ``element`` the resource or line inside it, ``expected`` what
    would have been accepted (see ``ConfigError``).
    """


class MtlsRefused(MeshError):
    """A peer or a certificate was refused; ``reason`` says why, in a few words."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason, self.detail = reason, detail
        super().__init__(reason + (f": {detail}" if detail else ""))
