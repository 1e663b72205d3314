"""TLS on the API and mutual TLS on the custodian gateway, over real HTTPS on loopback, with
certificates generated on the fly (``cryptography``).

* given a certificate and key, the API serves HTTPS only (TLS 1.2+); a client that trusts the
  certificate's issuer gets answers, a plain-HTTP client gets none;
* with ``client_tls = "organisations"``, a gateway read signed by an organisation's member needs a
  client certificate whose fingerprint that organisation registered (``identity.set_org_tls``):
  without one it is ``401 CLIENT_CERT_REQUIRED``, with another organisation's ``403
  CLIENT_CERT_NOT_REGISTERED``, with an unknown issuer's the handshake fails; none of these is
  audited or releases anything; the patient reads her own records without a certificate.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from careledger.api.client_tls import fingerprint
from careledger.api.server import BackgroundServer
from careledger.api.settings import ApiSettings
from careledger.client import Client, ClientError
from careledger.client.records import RecordsClient
from careledger.core.errors import Code
from careledger.node.solo import Node
from careledger.vault.store import Vault
from support import seeded_key
from support.records import OBSERVATION, send


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path
    der: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


Signer = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def issue(directory: Path, common_name: str, *, issuer: Signer | None = None, server: bool = False,
          ca: bool = False) -> tuple[Issued, x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A P-256 certificate for ``common_name`` (self-signed unless ``issuer``), written as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(common_name))
               .issuer_name(issuer[0].subject if issuer else _name(common_name)).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                                     x509.DNSName("localhost")]), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    cert_path, key_path = directory / f"{common_name}.crt", directory / f"{common_name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return Issued(cert_path, key_path, cert.public_bytes(serialization.Encoding.DER)), cert, key


@dataclass
class Pki:
    ca: Path
    server: Issued
    clinic: Issued
    research: Issued
    stranger: Issued
    client_bundle: Path

    def context(self, client: Issued | None = None) -> ssl.SSLContext:
        """A client context trusting the node's issuer, presenting ``client``'s certificate if given."""
        context = ssl.create_default_context(cafile=str(self.ca))
        if client is not None:
            context.load_cert_chain(str(client.cert), str(client.key))
        return context


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca, ca_cert, ca_key = issue(tmp_path, "careledger-test-ca", ca=True)
    server, _, _ = issue(tmp_path, "node", issuer=(ca_cert, ca_key), server=True)
    clinic, _, _ = issue(tmp_path, "clinic-org")  # organisations' own, self-signed, certificates
    research, _, _ = issue(tmp_path, "research-org")
    stranger, _, _ = issue(tmp_path, "stranger")
    bundle = tmp_path / "organisations.pem"
    bundle.write_bytes(clinic.cert.read_bytes() + research.cert.read_bytes())
    return Pki(ca.cert, server, clinic, research, stranger, bundle)


def test_the_api_serves_https_only_when_given_a_certificate(node: Node, pki: Pki) -> None:
    settings = ApiSettings(tls_cert=pki.server.cert, tls_key=pki.server.key)
    with BackgroundServer(node, settings=settings) as srv:
        assert srv.url.startswith("https://127.0.0.1:")
        with httpx.Client(base_url=srv.url, verify=pki.context()) as http:
            assert http.get("/v1/status").json()["chain_id"] == node.chain.chain_id
            assert http.get("/readyz").status_code == 200
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the node's issuer
            httpx.get(f"{srv.url}/v1/status", verify=ssl.create_default_context())
        with pytest.raises(httpx.HTTPError):  # plain HTTP on the TLS port gets no answer
            httpx.get(srv.url.replace("https://", "http://") + "/v1/status", timeout=3)
        # a TLS 1.1 client is refused
        old = pki.context()
        with pytest.warns(DeprecationWarning):
            old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{srv.url}/v1/status", verify=old)


def test_settings_refuse_half_a_tls_configuration(pki: Pki) -> None:
    for bad in ({"tls_cert": pki.server.cert}, {"tls_client_ca": pki.client_bundle},
                {"client_tls": "organisations"}, {"client_tls": "maybe"}, {"max_connections": 0}):
        with pytest.raises(ValueError):
            ApiSettings(**bad)


@dataclass
class Gateway:
    srv: BackgroundServer
    pki: Pki
    node: Node
    patient: str
    records: list[str]
    consortium: Any
    opened: list[Client]

    def client(self, who: Any, cert: Issued | None) -> RecordsClient:
        """A records client of ``who`` reaching the gateway over TLS, presenting ``cert`` (or none)."""
        transport = httpx.HTTPTransport(verify=self.pki.context(cert))
        self.opened.append(Client(self.srv.url, transport=transport))
        return RecordsClient(self.opened[-1], who)

    def audit_entries(self) -> int:
        conn = self.node.store.view().connection
        return int(conn.execute("SELECT count(*) FROM state WHERE key LIKE 'audit/%'").fetchone()[0])


@pytest.fixture
def gateway(node: Node, node_home: Any, pki: Pki, consortium: Any) -> Iterator[Gateway]:
    vault = Vault.create(Path(node_home.path) / "vault" / "hospital", "hospital")
    send(node, consortium.admin("hospital"), "identity.enrol_member",
         {"member": vault.gateway_key.public_hex, "org": "hospital", "roles": ["data_steward"]})
    vault.close()
    for name, org in (("dr_a", "hospital"), ("dr_b", "clinic")):
        send(node, consortium.admin(org), "identity.enrol_member",
             {"member": seeded_key(f"member/{name}").public_hex, "org": org, "roles": ["physician"]})
    alice = seeded_key("patient/alice")
    send(node, alice, "identity.register_patient", {})
    settings = ApiSettings(tls_cert=pki.server.cert, tls_key=pki.server.key, tls_client_ca=pki.client_bundle,
                           client_tls="organisations")
    with BackgroundServer(node, settings=settings) as srv:
        g = Gateway(srv, pki, node, "", [], consortium, [])
        hospital = g.client(seeded_key("member/dr_a"), None)  # storing needs no certificate
        owner = g.client(alice, None)
        g.patient = owner.pseudonym
        g.records = [hospital.store("hospital", g.patient, OBSERVATION)["records"][0]["record"]]
        owner.grant(g.patient, "org", "clinic", ["TREAT"], resource_types=["Observation"])
        try:
            yield g
        finally:  # an open keep-alive connection would hold the server's shutdown
            for client in g.opened:
                client.close()


def test_gateway_reads_by_members_need_their_organisations_registered_certificate(gateway: Gateway) -> None:
    g = gateway
    dr_b = seeded_key("member/dr_b")
    clinic_admin = g.consortium.admin("clinic")
    assert fingerprint(g.pki.clinic.der) == hashlib.sha256(g.pki.clinic.der).hexdigest()
    result = send(g.node, clinic_admin, "identity.set_org_tls", {"org": "clinic",
                                                                  "fingerprints": [fingerprint(g.pki.clinic.der)]})
    assert result.code == 0, result
    audited = g.audit_entries()
    # no certificate: refused before anything is decided or audited
    with pytest.raises(ClientError) as refused:
        g.client(dr_b, None).read("hospital", g.patient, g.records)
    assert (refused.value.code, refused.value.http_status) == (Code.CLIENT_CERT_REQUIRED, 401)
    # another organisation's certificate (accepted by the TLS layer, not registered by the clinic)
    with pytest.raises(ClientError) as refused:
        g.client(dr_b, g.pki.research).read("hospital", g.patient, g.records)
    assert (refused.value.code, refused.value.http_status) == (Code.CLIENT_CERT_NOT_REGISTERED, 403)
    # a certificate of an issuer the gateway does not accept: no TLS connection at all
    with pytest.raises(ClientError) as refused:
        g.client(dr_b, g.pki.stranger).read("hospital", g.patient, g.records)
    assert refused.value.code in (Code.NODE_UNAVAILABLE, Code.TIMEOUT)
    assert g.audit_entries() == audited
    # the clinic's registered certificate: granted and audited
    fetched = g.client(dr_b, g.pki.clinic).read("hospital", g.patient, g.records)
    assert [f.record for f in fetched] == g.records
    # the patient herself needs no certificate
    assert len(g.client(seeded_key("patient/alice"), None).read("hospital", g.patient, g.records)) == 1
    # the clinic clears its fingerprints: its certificate no longer opens the gateway
    assert send(g.node, clinic_admin, "identity.set_org_tls", {"org": "clinic", "fingerprints": []}).code == 0
    with pytest.raises(ClientError) as refused:
        g.client(dr_b, g.pki.clinic).read("hospital", g.patient, g.records)
    assert refused.value.code == Code.CLIENT_CERT_NOT_REGISTERED
    metrics = httpx.get(f"{g.srv.url}/metrics", verify=g.pki.context()).text
    assert 'careledger_gateway_reads_total{outcome="refused"} 3.0' in metrics


def test_the_fhir_token_exchange_needs_the_certificate_too(gateway: Gateway) -> None:
    from careledger.vault.requests import sign_headers

    g = gateway
    dr_b = seeded_key("member/dr_b")
    body = b'{"kind":"token","purpose":"TREAT"}'
    headers = {**sign_headers(dr_b, g.node.chain.chain_id, "POST", "/fhir/auth/token", body),
               "content-type": "application/json"}
    with httpx.Client(base_url=g.srv.url, verify=g.pki.context()) as http:
        answer = http.post("/fhir/auth/token", content=body, headers=headers)
    assert answer.status_code == 401
    assert "CLIENT_CERT_REQUIRED" in answer.text


def test_client_tls_off_needs_no_certificate(node: Node, node_home: Any, pki: Pki, consortium: Any) -> None:
    """The default: members read over plain TLS (or HTTP) as before."""
    vault = Vault.create(Path(node_home.path) / "vault" / "hospital", "hospital")
    send(node, consortium.admin("hospital"), "identity.enrol_member",
         {"member": vault.gateway_key.public_hex, "org": "hospital", "roles": ["data_steward"]})
    vault.close()
    dr_a = seeded_key("member/dr_a")
    send(node, consortium.admin("hospital"), "identity.enrol_member",
         {"member": dr_a.public_hex, "org": "hospital", "roles": ["physician"]})
    alice = seeded_key("patient/alice")
    send(node, alice, "identity.register_patient", {})
    with BackgroundServer(node, settings=ApiSettings(tls_cert=pki.server.cert, tls_key=pki.server.key)) as srv:
        client = RecordsClient(Client(srv.url, transport=httpx.HTTPTransport(verify=pki.context())), dr_a)
        patient = RecordsClient(client.ledger, alice).pseudonym
        record = client.store("hospital", patient, OBSERVATION)["records"][0]["record"]
        assert len(client.read("hospital", patient, [record])) == 1
        client.ledger.close()


def test_the_cli_registers_an_organisations_certificates(node: Node, node_home: Any, pki: Pki) -> None:
    from careledger.contracts.identity import org_tls_fingerprints
    from support.cli import run_cli

    with BackgroundServer(node) as srv:
        common = ("--as", "clinic-admin", "--home", str(node_home.path), "--url", srv.url)
        run = run_cli("identity", "set-tls", "clinic", "--cert", str(pki.clinic.cert), "--cert",
                      str(pki.research.cert), *common)
        assert run.exit_code == 0, run.output
        assert org_tls_fingerprints(node.store.view(), "clinic") == sorted(
            [fingerprint(pki.clinic.der), fingerprint(pki.research.der)])
        not_pem = node_home.path / "not.pem"
        not_pem.write_text("hello")
        run = run_cli("identity", "set-tls", "clinic", "--cert", str(not_pem), *common)
        assert run.exit_code == 1 and "FILE_UNREADABLE (912)" in run.stderr
        assert len(org_tls_fingerprints(node.store.view(), "clinic")) == 2  # nothing was sent
        assert run_cli("identity", "set-tls", "clinic", *common).exit_code == 0
        assert org_tls_fingerprints(node.store.view(), "clinic") == []
