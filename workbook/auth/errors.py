"""What a token, a key set or a scope check can refuse, all under ``WorkbookError``."""

from __future__ import annotations

from workbook.core.errors import WorkbookError


class AuthError(WorkbookError):
    """Base class of the authentication errors. ``status`` is the HTTP status to answer."""

    status = 401


class TokenRejected(AuthError):
    """A bearer token was refused. ``reason`` is a short stable code (``expired``,
    ``alg_not_allowed``, ``bad_signature``...), ``detail`` a sentence for a human."""

    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail
        super().__init__(f"token rejected ({reason}): {detail}")


class InsufficientScope(AuthError):
    """A valid token lacks a scope the route requires (RFC 6750 3.1: 403 ``insufficient_scope``)."""

    status = 403

    def __init__(self, missing: list[str], granted: list[str]):
        self.missing, self.granted = list(missing), list(granted)
        super().__init__(f"token lacks scope(s) {self.missing} (granted: {self.granted or 'none'})")


class JWKSUnavailable(AuthError):
    """The JWKS document could not be fetched or is not a JWKS, and no cached keys remain usable."""

    status = 503

    def __init__(self, url: str, detail: str):
        self.url, self.detail = url, detail
        super().__init__(f"JWKS at {url} is unavailable: {detail}")


class WeakSecret(AuthError):
    """An HMAC secret that must not be used: a known default (the source article's
    ``"secret"``) or shorter than the hash (RFC 7518 3.2: at least 256 bits for HS256)."""

    def __init__(self, detail: str):
        self.detail = detail
        super().__init__(f"HMAC secret refused: {detail}")
