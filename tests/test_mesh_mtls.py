"""Chapter 7: real mutual TLS between sidecars on 127.0.0.1 (bounded: each test < 30 s, < 100 requests)."""

from __future__ import annotations

import asyncio
import datetime as dt

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509

from workbook.core.clock import ManualClock
from workbook.core.errors import ParameterError
from workbook.mesh import (
    MeshCA,
    MeshConfigError,
    MeshListener,
    MtlsRefused,
    Workload,
    WorkloadIdentity,
    effective_mtls_mode,
    keep_rotated,
    mtls_handshake,
    parse_resources,
    peer_principal,
    spiffe_id,
)
from workbook.mesh.mtls import utc_now

GATEWAY = "cluster.local/ns/default/sa/api-gateway"


@pytest.fixture(scope="module")
def ca():
    return MeshCA()


def app_reporting_peer():
    async def handler(request):
        sslobj = request.transport.get_extra_info("ssl_object")
        cert = sslobj.getpeercert(binary_form=True) if sslobj else None
        return web.json_response({
            "peer": peer_principal(request.transport),
            "tls": sslobj.version() if sslobj else None,
            "serial": x509.load_der_x509_certificate(cert).serial_number if cert else None,
        })
    app = web.Application()
    app.router.add_get("/", handler)
    return app


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def get(url, context=None, headers=None):
    connector = aiohttp.TCPConnector(ssl=context if context is not None else False, force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=5)) as s:
        async with s.get(url, headers=headers) as r:
            return r.status, await r.json()


async def fails(url, context=None):
    try:
        await get(url, context)
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
        return type(exc).__name__
    return None


def test_workload_certificate_is_a_short_lived_spiffe_svid(ca):
    cert = ca.issue("default", "api-gateway", ttl=dt.timedelta(hours=1))
    parsed = x509.load_pem_x509_certificate(cert.cert_pem)
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical and san.value.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://cluster.local/ns/default/sa/api-gateway"]
    assert parsed.issuer == ca.certificate.subject and len(parsed.subject) == 0
    parsed.verify_directly_issued_by(ca.certificate)
    assert cert.lifetime == dt.timedelta(hours=1) and cert.principal == GATEWAY
    assert not cert.due_for_rotation(cert.not_before + dt.timedelta(minutes=29))
    assert cert.due_for_rotation(cert.not_before + dt.timedelta(minutes=30))
    with pytest.raises(MeshConfigError, match="service_account"):
        spiffe_id("default", "a/b")


def test_strict_mtls_tls13_identity_from_the_certificate_not_a_header(ca):
    server = WorkloadIdentity.issued_by(ca, "default", "order-service")
    client = WorkloadIdentity.issued_by(ca, "default", "api-gateway")

    async def main():
        async with MeshListener(app_reporting_peer(), server, "STRICT") as sidecar:
            forged = {"x-forwarded-client-cert": "URI=spiffe://cluster.local/ns/default/sa/admin"}
            status, body = await get(sidecar.tls_url + "/", client.client_context, headers=forged)
            assert status == 200 and body["peer"] == GATEWAY and body["tls"] == "TLSv1.3"
            server_identity = await mtls_handshake(client, "127.0.0.1", sidecar.port)
            assert server_identity == "cluster.local/ns/default/sa/order-service"
            with pytest.raises(MtlsRefused, match="unexpected server identity"):
                await mtls_handshake(client, "127.0.0.1", sidecar.port, expected_principals=[GATEWAY])
            assert await fails(sidecar.url + "/") is not None
            assert sidecar.refusals and {r.reason for r in sidecar.refusals} == {
                "plaintext under STRICT (mutual TLS required)"}
            assert sidecar.accepted["tls"] >= 2 and sidecar.accepted["plaintext"] == 0
    run(main())


def test_permissive_accepts_both_and_disable_only_plaintext(ca):
    server = WorkloadIdentity.issued_by(ca, "default", "order-service")
    client = WorkloadIdentity.issued_by(ca, "default", "api-gateway")

    async def main():
        async with MeshListener(app_reporting_peer(), server, "PERMISSIVE") as sidecar:
            assert (await get(sidecar.url + "/"))[1]["peer"] is None
            assert (await get(sidecar.tls_url + "/", client.client_context))[1]["peer"] == GATEWAY
            assert sidecar.accepted == {"tls": 1, "plaintext": 1} and not sidecar.refusals
            sidecar.set_mode("DISABLE")                      # takes effect at the next connection
            assert (await get(sidecar.url + "/"))[0] == 200
            assert await fails(sidecar.tls_url + "/", client.client_context) is not None
            assert sidecar.refusals[-1].reason == "TLS under DISABLE (plaintext only)"
    run(main())


def test_certificate_from_another_ca_is_refused_with_the_reason(ca):
    server = WorkloadIdentity.issued_by(ca, "default", "order-service")
    intruder = WorkloadIdentity(MeshCA().issue("default", "api-gateway"), ca.root_pem)   # trusts us, we don't trust it
    stranger = WorkloadIdentity.issued_by(MeshCA(), "default", "api-gateway")            # trusts only its own CA

    async def main():
        async with MeshListener(app_reporting_peer(), server, "STRICT") as sidecar:
            assert await fails(sidecar.tls_url + "/", intruder.client_context) is not None
            await asyncio.sleep(0.05)
            assert any("another CA" in r.reason for r in sidecar.refusals), sidecar.refusals
            with pytest.raises(MtlsRefused, match="another CA"):
                await mtls_handshake(stranger, "127.0.0.1", sidecar.port)
    run(main())


def test_expired_certificates_are_refused_with_the_reason(ca):
    old = dict(not_before=utc_now() - dt.timedelta(hours=2), ttl=dt.timedelta(hours=1))
    server = WorkloadIdentity.issued_by(ca, "default", "order-service")
    expired_client = WorkloadIdentity.issued_by(ca, "default", "api-gateway", **old)
    expired_server = WorkloadIdentity.issued_by(ca, "default", "payment-service", **old)
    client = WorkloadIdentity.issued_by(ca, "default", "api-gateway")

    async def main():
        async with MeshListener(app_reporting_peer(), server, "STRICT") as sidecar:
            assert await fails(sidecar.tls_url + "/", expired_client.client_context) is not None
            await asyncio.sleep(0.05)
            assert "certificate has expired" in {r.reason for r in sidecar.refusals}
        async with MeshListener(app_reporting_peer(), expired_server, "STRICT") as sidecar:
            with pytest.raises(MtlsRefused, match="certificate has expired"):
                await mtls_handshake(client, "127.0.0.1", sidecar.port)
    run(main())


def test_rotation_while_a_client_keeps_calling_drops_nothing(ca):
    server = WorkloadIdentity.issued_by(ca, "default", "order-service", ttl=dt.timedelta(minutes=10))
    client = WorkloadIdentity.issued_by(ca, "default", "api-gateway", ttl=dt.timedelta(minutes=10))
    calls = 60

    async def main():
        async with MeshListener(app_reporting_peer(), server, "STRICT") as sidecar:
            seen_client, seen_server, failures = set(), set(), []
            connector = aiohttp.TCPConnector(ssl=client.client_context, force_close=True)
            async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=5)) as s:
                async def caller():
                    for _ in range(calls):
                        try:
                            async with s.get(sidecar.tls_url + "/") as r:
                                seen_client.add((await r.json())["serial"])
                            # which certificate the server presents now: one more handshake
                            _, writer = await asyncio.open_connection("127.0.0.1", sidecar.port,
                                                                      ssl=client.client_context)
                            der = writer.get_extra_info("ssl_object").getpeercert(True)
                            seen_server.add(x509.load_der_x509_certificate(der).serial_number)
                            writer.close()
                        except (aiohttp.ClientError, OSError) as exc:
                            failures.append(repr(exc))

                async def rotator():
                    for i in range(6):
                        await asyncio.sleep(0.01)
                        (server if i % 2 else client).rotate(
                            ca.issue("default", "order-service" if i % 2 else "api-gateway",
                                     ttl=dt.timedelta(minutes=10)))

                await asyncio.gather(caller(), rotator())
            return seen_client, seen_server, failures

    seen_client, seen_server, failures = run(main())
    assert failures == []
    assert server.rotations == 3 and client.rotations == 3
    assert len(seen_client) >= 2 and len(seen_server) >= 2      # new certificates were presented mid-stream
    with pytest.raises(MeshConfigError, match="certificate"):
        server.rotate(ca.issue("default", "someone-else"))


def test_keep_rotated_renews_every_half_lifetime_on_an_injected_clock():
    clock = ManualClock()
    start = utc_now()
    ca = MeshCA(now=lambda: start + dt.timedelta(seconds=clock.now()))
    identity = WorkloadIdentity.issued_by(ca, "default", "api-gateway", ttl=dt.timedelta(hours=1),
                                          not_before=start)
    rotations = asyncio.run(keep_rotated(identity, ca, clock=clock, check_every=60, max_checks=180))  # 3 hours
    assert clock.sleeps == [60] * 180
    # at 30, 59, 88, ... minutes: each new certificate starts a minute back (clock skew)
    assert rotations == 6 and identity.rotations == 6
    with pytest.raises(ParameterError, match="check_every"):
        asyncio.run(keep_rotated(identity, ca, clock=clock, check_every=0))


def test_renew_if_due_at_half_the_lifetime():
    clock = [utc_now()]
    ca = MeshCA(now=lambda: clock[0])
    identity = WorkloadIdentity.issued_by(ca, "default", "api-gateway", ttl=dt.timedelta(hours=2))
    assert not identity.renew_if_due(ca)
    clock[0] += dt.timedelta(hours=1)
    assert identity.renew_if_due(ca) and identity.rotations == 1
    assert identity.certificate.lifetime == dt.timedelta(hours=2)


PEER_AUTHS = """apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: legacy}
spec: {mtls: {mode: PERMISSIVE}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: metrics, namespace: default}
spec:
  selector: {matchLabels: {app: order-service}}
  mtls: {mode: UNSET}
  portLevelMtls:
    "9090": {mode: DISABLE}
"""


def test_effective_mtls_mode_precedence():
    resources = parse_resources(PEER_AUTHS, "pa.yaml")
    order = Workload("o", "default", {"app": "order-service"})
    assert effective_mtls_mode(resources, order, 8080) == "STRICT"          # UNSET inherits from the mesh
    assert effective_mtls_mode(resources, order, 9090) == "DISABLE"         # port level wins
    assert effective_mtls_mode(resources, Workload("l", "legacy", {}), 80) == "PERMISSIVE"
    assert effective_mtls_mode([], order) == "PERMISSIVE"                    # Istio's default
    with pytest.raises(MeshConfigError, match="spec.mtls.mode"):
        effective_mtls_mode(parse_resources(PEER_AUTHS.replace("PERMISSIVE", "LAX"), "pa.yaml"),
                            Workload("l", "legacy", {}))


def test_garbage_and_silent_clients_are_refused_and_the_listener_keeps_serving(ca):
    server = WorkloadIdentity.issued_by(ca, "default", "order-service")
    client = WorkloadIdentity.issued_by(ca, "default", "api-gateway")

    async def main():
        async with MeshListener(app_reporting_peer(), server, "PERMISSIVE", first_byte_timeout=0.2) as sidecar:
            _, writer = await asyncio.open_connection("127.0.0.1", sidecar.port)
            writer.write(b"\x16\x03\x01\x00\x05garbage-not-a-client-hello")
            await writer.drain()
            _, silent = await asyncio.open_connection("127.0.0.1", sidecar.port)
            for _ in range(100):                       # until both are refused (at most 100 x 10 ms)
                if len(sidecar.refusals) >= 2:
                    break
                await asyncio.sleep(0.01)
            writer.close()
            silent.close()
            kinds = sorted(r.kind for r in sidecar.refusals)
            assert kinds == ["handshake", "unknown"], sidecar.refusals
            assert (await get(sidecar.tls_url + "/", client.client_context))[1]["peer"] == GATEWAY
    run(main())
