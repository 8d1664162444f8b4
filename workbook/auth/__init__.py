"""Authentication for the gateway: JWT verification that resists the known attacks.

``keys`` (signing and verification keys, HMAC secret strength, JWKS parsing and a cached
JWKS client with rotation), ``verifier`` (``JWTVerifier``: the checks in a documented
order, time claims with a stated leeway, scopes), ``attacks`` (the forgery suite and the
source article's forgeable default secret) and ``errors``. PyJWT does the signature
mathematics; what it is allowed to accept is decided here. Chapter 6 introduces it.
"""

from workbook.auth.attacks import (ARTICLE_DEFAULT_SECRET, AttackResult, Forgery, forge_with_default_secret, forgeries,
                                   naive_verify, run_attacks)
from workbook.auth.errors import AuthError, InsufficientScope, JWKSUnavailable, TokenRejected, WeakSecret
from workbook.auth.keys import (KNOWN_DEFAULT_SECRETS, SUPPORTED_ALGORITHMS, JWKSCache, KeySet, SigningKey,
                                VerificationKey, check_hmac_secret, fetch_json, jwks_document, parse_jwks)
from workbook.auth.verifier import (DEFAULT_LEEWAY, DEFAULT_REQUIRED_CLAIMS, JWTVerifier, VerifierConfig, require_scopes,
                                    scopes_of)

__all__ = [
    "ARTICLE_DEFAULT_SECRET", "AttackResult", "AuthError", "DEFAULT_LEEWAY", "DEFAULT_REQUIRED_CLAIMS", "Forgery",
    "InsufficientScope", "JWKSCache", "JWKSUnavailable", "JWTVerifier", "KNOWN_DEFAULT_SECRETS", "KeySet",
    "SUPPORTED_ALGORITHMS", "SigningKey", "TokenRejected", "VerificationKey", "VerifierConfig", "WeakSecret",
    "check_hmac_secret", "fetch_json", "forge_with_default_secret", "forgeries", "jwks_document", "naive_verify",
    "parse_jwks", "require_scopes", "run_attacks", "scopes_of",
]
