"""Real mutual TLS for the mesh: a certificate authority, SPIFFE identities, rotation, modes.

* ``MeshCA`` is the mesh's root of trust (what istiod's CA is): an EC P-256 self-signed
  root that issues short-lived **workload certificates** whose only name is a SPIFFE URI
  SAN, ``spiffe://cluster.local/ns/<namespace>/sa/<service account>`` (empty subject,
  critical SAN, client and server auth), as Istio's are.
* ``WorkloadIdentity`` holds one workload's certificate and the two ``ssl.SSLContext`` s
  built from it: TLS 1.3 only, the peer's certificate required and verified against the
  mesh root on *both* sides. Hostnames are not checked: the peer is named by its SPIFFE
  identity, read from its verified certificate (``peer_principal``), never from a header.
  ``rotate(new)`` reloads the certificate chain into the same contexts: connections
  already open keep their session, new handshakes present the new certificate, so no
  request is dropped. ``renew_if_due(ca)`` rotates once half the lifetime has passed
  (Istio's default grace ratio, 0.5).
* ``MeshListener`` is a sidecar's inbound port: it peeks at the first byte of each
  connection (``0x16`` opens a TLS handshake) and applies the PeerAuthentication mode:
  ``STRICT`` accepts only mutual TLS, ``PERMISSIVE`` both, ``DISABLE`` only plaintext.
  Every refusal is recorded with its reason (plaintext under STRICT, a certificate from
  another CA, an expired certificate...), and nothing is forwarded to the application.
* ``effective_mtls_mode`` resolves PeerAuthentication resources for a workload and port as
  Istio does: port-level setting, then the workload's policy, the namespace's, the mesh's
  (root namespace), ``UNSET`` inheriting, PERMISSIVE by default.

Certificate validity is checked by OpenSSL against the real clock, so issuing takes a
``now`` function (default: the current UTC time) rather than a virtual clock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
import socket
import ssl
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from workbook.core.clock import Clock, LoopClock
from workbook.core.params import check_number
from workbook.mesh.analysis import Workload, labels_match
from workbook.mesh.errors import MeshConfigError, MtlsRefused
from workbook.mesh.resources import MeshResource

MTLS_MODES = ("STRICT", "PERMISSIVE", "DISABLE")
TLS_RECORD_HANDSHAKE = 0x16


def utc_now() -> dt.datetime:
    """The current UTC time (what OpenSSL checks certificate validity against)."""
    return dt.datetime.now(dt.timezone.utc)


def spiffe_id(namespace: str, service_account: str, trust_domain: str = "cluster.local") -> str:
    """``spiffe://<trust domain>/ns/<namespace>/sa/<service account>``."""
    for name, value in (("namespace", namespace), ("service_account", service_account), ("trust_domain", trust_domain)):
        if not value or "/" in value:
            raise MeshConfigError("spiffe_id", name, "a non-empty name without '/'", value)
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class WorkloadCertificate:
    """A workload's certificate and key (PEM), its SPIFFE id, serial and validity window."""

    spiffe_id: str
    cert_pem: bytes = field(repr=False)
    key_pem: bytes = field(repr=False)
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime

    @property
    def principal(self) -> str:
        """The identity as AuthorizationPolicy writes it (without ``spiffe://``)."""
        return self.spiffe_id.removeprefix("spiffe://")

    @property
    def lifetime(self) -> dt.timedelta:
        return self.not_after - self.not_before

    def due_for_rotation(self, now: dt.datetime, grace_ratio: float = 0.5) -> bool:
        """True once ``grace_ratio`` of the lifetime has passed (Istio rotates at half)."""
        return now >= self.not_before + self.lifetime * grace_ratio


class MeshCA:
    """The mesh's certificate authority: a self-signed EC P-256 root issuing workload certificates."""

    def __init__(self, trust_domain: str = "cluster.local", *, name: str | None = None,
                 now: Callable[[], dt.datetime] = utc_now, lifetime: dt.timedelta = dt.timedelta(days=365)):
        self.trust_domain, self.now = trust_domain, now
        name = name or f"workbook mesh root {secrets.token_hex(4)}"  # two meshes' roots never share a name
        self._key = ec.generate_private_key(ec.SECP256R1())
        start = now() - dt.timedelta(minutes=5)
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain),
                             x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.certificate = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + lifetime)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256()))
        self.root_pem = _pem(self.certificate)

    def issue(self, namespace: str, service_account: str, *, ttl: dt.timedelta = dt.timedelta(hours=24),
              not_before: dt.datetime | None = None) -> WorkloadCertificate:
        """A workload certificate for ``spiffe://<trust domain>/ns/<namespace>/sa/<sa>``.

        ``ttl`` is its lifetime (Istio's default is 24 h); ``not_before`` defaults to one
        minute ago (clock skew). A ``not_before`` in the past with a short ``ttl`` makes an
        expired certificate, which is how the tests make one.
        """
        if ttl <= dt.timedelta(0):
            raise MeshConfigError("MeshCA.issue", "ttl", "a positive duration", ttl)
        uri = spiffe_id(namespace, service_account, self.trust_domain)
        key = ec.generate_private_key(ec.SECP256R1())
        start = not_before if not_before is not None else self.now() - dt.timedelta(minutes=1)
        serial = x509.random_serial_number()
        cert = (
            x509.CertificateBuilder().subject_name(x509.Name([]))
            .issuer_name(self.certificate.subject).public_key(key.public_key()).serial_number(serial)
            .not_valid_before(start).not_valid_after(start + ttl)
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=True)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, key_cert_sign=False,
                                         crl_sign=False, content_commitment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256()))
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return WorkloadCertificate(uri, _pem(cert), key_pem, serial, start, start + ttl)


def spiffe_id_from_der(der: bytes | None) -> str | None:
    """The SPIFFE URI SAN of a DER certificate (None without certificate or SPIFFE SAN)."""
    if not der:
        return None
    cert = x509.load_der_x509_certificate(der)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = [u for u in sans.get_values_for_type(x509.UniformResourceIdentifier) if u.startswith("spiffe://")]
    return uris[0] if len(uris) == 1 else None


def peer_certificate_der(transport) -> bytes | None:
    """The verified peer certificate (DER) of an asyncio/aiohttp transport; None if plaintext."""
    sslobj = transport.get_extra_info("ssl_object") if transport is not None else None
    return sslobj.getpeercert(binary_form=True) if sslobj is not None else None


def peer_principal(transport) -> str | None:
    """The peer's identity (``cluster.local/ns/x/sa/y``) from its certificate; None if plaintext."""
    uri = spiffe_id_from_der(peer_certificate_der(transport))
    return uri.removeprefix("spiffe://") if uri else None


def refusal_reason(exc: BaseException) -> str:
    """A short reason for a failed handshake: 'certificate has expired', 'unknown CA'..."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = exc.verify_message or str(exc)
        if "unable to get local issuer" in message or "self-signed" in message or "self signed" in message:
            return f"certificate from another CA ({message})"
        return message
    if isinstance(exc, ConnectionResetError):
        return "the peer reset the connection during the handshake (it refused our certificate)"
    if isinstance(exc, ssl.SSLError):
        return (exc.reason or str(exc)).lower().replace("_", " ")
    return f"{type(exc).__name__}: {exc}"


class WorkloadIdentity:
    """A workload's certificate, the mesh root it trusts, and its TLS 1.3 mTLS contexts."""

    def __init__(self, certificate: WorkloadCertificate, trusted_roots_pem: bytes):
        self.trusted_roots_pem = trusted_roots_pem
        self.server_context = self._context(ssl.PROTOCOL_TLS_SERVER)
        self.client_context = self._context(ssl.PROTOCOL_TLS_CLIENT)
        self.rotations = 0
        self.certificate = certificate
        self._load(certificate)

    @classmethod
    def issued_by(cls, ca: MeshCA, namespace: str, service_account: str, **issue) -> WorkloadIdentity:
        return cls(ca.issue(namespace, service_account, **issue), ca.root_pem)

    def _context(self, protocol) -> ssl.SSLContext:
        ctx = ssl.SSLContext(protocol)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.verify_mode = ssl.CERT_REQUIRED
        if protocol == ssl.PROTOCOL_TLS_CLIENT:
            ctx.check_hostname = False  # the peer is named by its SPIFFE id, checked by the caller
        ctx.load_verify_locations(cadata=self.trusted_roots_pem.decode())
        return ctx

    def _load(self, certificate: WorkloadCertificate) -> None:
        with tempfile.TemporaryDirectory(prefix="mesh-cert-") as tmp:
            cert_file, key_file = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
            with open(cert_file, "wb") as f:
                f.write(certificate.cert_pem)
            with open(os.open(key_file, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
                f.write(certificate.key_pem)
            for ctx in (self.server_context, self.client_context):
                ctx.load_cert_chain(cert_file, key_file)

    @property
    def principal(self) -> str:
        return self.certificate.principal

    def rotate(self, certificate: WorkloadCertificate) -> None:
        """Present ``certificate`` from the next handshake on (open connections are unaffected)."""
        if certificate.spiffe_id != self.certificate.spiffe_id:
            raise MeshConfigError("WorkloadIdentity.rotate", "certificate",
                                  f"a certificate for {self.certificate.spiffe_id}", certificate.spiffe_id)
        self._load(certificate)
        self.certificate = certificate
        self.rotations += 1

    def renew_if_due(self, ca: MeshCA, *, ttl: dt.timedelta | None = None, grace_ratio: float = 0.5) -> bool:
        """Rotate to a fresh certificate from ``ca`` once ``grace_ratio`` of the lifetime has passed."""
        if not self.certificate.due_for_rotation(ca.now(), grace_ratio):
            return False
        ns, sa = self.certificate.spiffe_id.split("/ns/", 1)[1].split("/sa/", 1)
        self.rotate(ca.issue(ns, sa, ttl=ttl or self.certificate.lifetime))
        return True


async def keep_rotated(identity: WorkloadIdentity, ca: MeshCA, *, clock: Clock | None = None,
                       check_every: float = 60.0, grace_ratio: float = 0.5,
                       stop: asyncio.Event | None = None, max_checks: int | None = None) -> int:
    """Istio's agent loop: every ``check_every`` seconds of ``clock``, renew the certificate
    once ``grace_ratio`` of its lifetime has passed. Runs until ``stop`` is set (or
    ``max_checks`` checks); returns how many rotations it made."""
    check_every = check_number("check_every", check_every, minimum=0, min_exclusive=True)
    grace_ratio = check_number("grace_ratio", grace_ratio, minimum=0, maximum=1, min_exclusive=True)
    clock = clock or LoopClock()
    rotations = checks = 0
    while not (stop is not None and stop.is_set()) and (max_checks is None or checks < max_checks):
        rotations += identity.renew_if_due(ca, grace_ratio=grace_ratio)
        checks += 1
        await clock.sleep(check_every)
    return rotations


def check_mtls_mode(mode: str) -> str:
    if mode not in MTLS_MODES:
        raise MeshConfigError("PeerAuthentication", "spec.mtls.mode", f"one of {', '.join(MTLS_MODES)}", mode)
    return mode


def effective_mtls_mode(resources: Iterable[MeshResource], workload: Workload, port: int | None = None, *,
                        root_namespace: str = "istio-system") -> str:
    """The mTLS mode Istio applies to ``workload`` (and ``port``) under these PeerAuthentications.

    Most specific first: the workload's policy (a selector matching it; its
    ``portLevelMtls`` for the port first), then its namespace's policy (no selector), then
    the mesh policy (root namespace, no selector). ``UNSET`` (or no ``mtls``) inherits from
    the next level; with nothing set the mode is PERMISSIVE.
    """
    pas = [r for r in resources if r.kind == "PeerAuthentication"]
    workload_level = [r for r in pas if r.namespace == workload.namespace and (r.spec.get("selector") or {})
                      and labels_match((r.spec["selector"] or {}).get("matchLabels"), workload.labels)]
    namespace_level = [r for r in pas if r.namespace == workload.namespace and not r.spec.get("selector")]
    mesh_level = [r for r in pas if r.namespace == root_namespace and not r.spec.get("selector")]
    for level in (workload_level, namespace_level, mesh_level):
        for r in sorted(level, key=lambda r: r.name):
            if port is not None and level is workload_level:
                port_mode = ((r.spec.get("portLevelMtls") or {}).get(str(port))
                             or (r.spec.get("portLevelMtls") or {}).get(port) or {}).get("mode")
                if port_mode and port_mode != "UNSET":
                    return check_mtls_mode(port_mode)
            mode = (r.spec.get("mtls") or {}).get("mode", "UNSET")
            if mode != "UNSET":
                return check_mtls_mode(mode)
    return "PERMISSIVE"


@dataclass(frozen=True)
class Refusal:
    """A connection the listener refused: ``kind`` (plaintext, tls, handshake) and why."""

    kind: str
    reason: str


class MeshListener:
    """A sidecar's inbound listener on 127.0.0.1 serving an aiohttp app under a PeerAuthentication mode.

    The first byte of each connection decides: ``0x16`` is a TLS handshake (accepted under
    STRICT and PERMISSIVE, with the peer's certificate required and verified), anything
    else plaintext (accepted under PERMISSIVE and DISABLE). ``mode`` may be changed while
    traffic runs; it applies to the next connection. ``refusals`` records every refused
    connection with its reason, ``accepted`` counts the accepted ones by kind.
    """

    def __init__(self, app: web.Application, identity: WorkloadIdentity | None, mode: str = "STRICT", *,
                 host: str = "127.0.0.1", port: int = 0, first_byte_timeout: float = 5.0,
                 handshake_timeout: float = 5.0):
        if mode != "DISABLE" and identity is None:
            raise MeshConfigError("MeshListener", "identity", f"a WorkloadIdentity under mode {mode}")
        self.app, self.identity, self.mode = app, identity, check_mtls_mode(mode)
        self.host, self.port = host, port
        self.first_byte_timeout, self.handshake_timeout = first_byte_timeout, handshake_timeout
        self.refusals: list[Refusal] = []
        self.accepted: Counter[str] = Counter()
        self._runner: web.AppRunner | None = None
        self._sock: socket.socket | None = None
        self._tasks: set[asyncio.Task] = set()
        self._accept_task: asyncio.Task | None = None

    def set_mode(self, mode: str) -> None:
        if mode != "DISABLE" and self.identity is None:
            raise MeshConfigError("MeshListener", "identity", f"a WorkloadIdentity under mode {mode}")
        self.mode = check_mtls_mode(mode)

    async def start(self) -> int:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((self.host, self.port))
        self._sock.listen(128)
        self._sock.setblocking(False)
        self.port = self._sock.getsockname()[1]
        self._accept_task = asyncio.get_running_loop().create_task(self._accept_loop())
        return self.port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(self._sock)
            task = loop.create_task(self._serve(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _first_byte(self, conn: socket.socket) -> bytes:
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        loop.add_reader(conn.fileno(), lambda: ready.done() or ready.set_result(None))
        try:
            await asyncio.wait_for(ready, self.first_byte_timeout)
        finally:
            loop.remove_reader(conn.fileno())
        return conn.recv(1, socket.MSG_PEEK)

    def _refuse(self, conn: socket.socket, kind: str, reason: str) -> None:
        self.refusals.append(Refusal(kind, reason))
        conn.close()

    async def _serve(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            first = await self._first_byte(conn)
        except (TimeoutError, asyncio.TimeoutError, OSError) as exc:
            self._refuse(conn, "unknown", f"no first byte: {type(exc).__name__}")
            return
        if not first:
            conn.close()
            return
        is_tls = first[0] == TLS_RECORD_HANDSHAKE
        mode = self.mode
        if is_tls and mode == "DISABLE":
            self._refuse(conn, "tls", "TLS under DISABLE (plaintext only)")
            return
        if not is_tls and mode == "STRICT":
            self._refuse(conn, "plaintext", "plaintext under STRICT (mutual TLS required)")
            return
        try:
            if is_tls:
                await loop.connect_accepted_socket(self._runner.server, conn, ssl=self.identity.server_context,
                                                   ssl_handshake_timeout=self.handshake_timeout)
            else:
                await loop.connect_accepted_socket(self._runner.server, conn)
        except (ssl.SSLError, OSError, TimeoutError, asyncio.TimeoutError) as exc:
            self._refuse(conn, "handshake", refusal_reason(exc))
            return
        self.accepted["tls" if is_tls else "plaintext"] += 1

    async def stop(self) -> None:
        if self._accept_task:
            self._accept_task.cancel()
            await asyncio.gather(self._accept_task, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._sock:
            self._sock.close()
        if self._runner:
            await self._runner.cleanup()

    async def __aenter__(self) -> MeshListener:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()


async def mtls_handshake(identity: WorkloadIdentity, host: str, port: int, *,
                         expected_principals: Iterable[str] | None = None, timeout: float = 5.0) -> str:
    """Open a mutual-TLS connection, verify the server, and return its principal.

    Raises ``MtlsRefused`` with the reason when the handshake fails (the server's
    certificate is from another CA, expired...), the server closes on us (it refused our
    certificate), or the server's identity is not one of ``expected_principals`` (Istio's
    secure naming).
    """
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=identity.client_context), timeout)
    except (ssl.SSLError, OSError, TimeoutError, asyncio.TimeoutError) as exc:
        raise MtlsRefused("handshake failed", refusal_reason(exc)) from None
    try:
        principal = peer_principal(writer.transport)
        if principal is None:
            raise MtlsRefused("server has no SPIFFE identity")
        expected = set(expected_principals or ())
        if expected and principal not in expected:
            raise MtlsRefused("unexpected server identity", f"{principal} is not one of {sorted(expected)}")
        return principal
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ssl.SSLError, OSError):
            pass
