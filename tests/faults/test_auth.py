"""Credentials against real servers, end to end through the ingester (the security suite's
integration half; the unit half is tests/unit/security).

* NATS user/password over TLS, and token over mutual TLS (a CA made in the test with
  ``cryptography``), with a ClickHouse password user: the pipeline works, and no secret appears
  in the ingester's output, even at LOG_LEVEL=debug.
* A wrong password (ClickHouse or NATS) or token ends start-up with one clear line and exit 1:
  no retry storm (counted on the server side), no secret in the line.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ponix_devstack import ClickHouseServer, ClickHouseUser, NatsServer, NatsTls
from tests.faults.figures import Figures, record
from tests.faults.harness import Book, default_pipeline, drain_and_judge
from tests.support.pipeline import PipelineClient, ServiceLauncher

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

pytestmark = pytest.mark.faults

CH_PASSWORD = "SECRET-ch-Pw-1"
NATS_PASSWORD = "SECRET-nats-Pw-2"
NATS_TOKEN = "SECRET-nats-Token-3"
NEEDLE = "SECRET-"


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_pki(directory: Path) -> Pki:
    """A throwaway CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    now = dt.datetime.now(dt.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return path

    def write_cert(cert: x509.Certificate, path: Path) -> Path:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("ponix-faults-ca"))
        .issuer_name(name("ponix-faults-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(common: str, server: bool) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(common))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(
                x509.ExtendedKeyUsage(
                    [
                        x509.ExtendedKeyUsageOID.SERVER_AUTH
                        if server
                        else x509.ExtendedKeyUsageOID.CLIENT_AUTH
                    ]
                ),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
        return builder.sign(ca_key, hashes.SHA256()), key

    server_cert, server_key = leaf("127.0.0.1", server=True)
    client_cert, client_key = leaf("ponix-ingester", server=False)
    return Pki(
        ca=write_cert(ca, directory / "ca.pem"),
        server_cert=write_cert(server_cert, directory / "server.pem"),
        server_key=write_key(server_key, directory / "server.key"),
        client_cert=write_cert(client_cert, directory / "client.pem"),
        client_key=write_key(client_key, directory / "client.key"),
    )


@pytest.mark.parametrize("auth", ["password+tls", "token+mtls"])
async def test_credentials_work_and_never_reach_the_logs(
    nats_server_factory: Callable[..., NatsServer],
    clickhouse_server_factory: Callable[..., ClickHouseServer],
    tmp_path: Path,
    unique: str,
    launch: ServiceLauncher,
    auth: str,
) -> None:
    started = time.monotonic()
    pki = make_pki(tmp_path)
    clickhouse = clickhouse_server_factory(
        users=[ClickHouseUser("default"), ClickHouseUser("writer", CH_PASSWORD)]
    )
    if auth == "password+tls":
        nats = nats_server_factory(
            user="ingester",
            password=NATS_PASSWORD,
            tls=NatsTls(cert_file=pki.server_cert, key_file=pki.server_key),
        )
        nats_env = {"NATS_USER": "ingester", "NATS_PASSWORD": NATS_PASSWORD}
    else:
        nats = nats_server_factory(
            token=NATS_TOKEN,
            tls=NatsTls(
                cert_file=pki.server_cert,
                key_file=pki.server_key,
                ca_file=pki.ca,
                verify_clients=True,
            ),
        )
        nats_env = {
            "NATS_TOKEN": NATS_TOKEN,
            "NATS_TLS_CERT_FILE": pki.client_cert,
            "NATS_TLS_KEY_FILE": pki.client_key,
        }
    pipeline = default_pipeline(
        nats_url=f"tls://127.0.0.1:{nats.port}",
        # The ClickHouse password travels in the URL, the NATS secrets in their own variables.
        clickhouse_url=clickhouse.url_for("writer"),
        unique=unique,
        database="ponix",
        NATS_TLS_CA_FILE=pki.ca,
        LOG_LEVEL="debug",
        **nats_env,
    )
    assert CH_PASSWORD in pipeline.env["CLICKHOUSE_URL"]
    book = Book()
    async with PipelineClient.connect(pipeline, provision=True) as client:
        ingester = await launch.start(pipeline)
        book.add(await client.publish_synthetic(300, seed=12))
        outcome = await drain_and_judge(client, book, within=30)
        exit_ = await ingester.terminate()
        await client.delete_streams()
    figures = Figures(f"auth_{auth}", "short")
    figures.take_outcome(outcome, started)
    line = record(figures)
    assert NEEDLE not in json.dumps(line), "a credential in the recorded figures"
    assert outcome.verdict.clean, outcome.verdict.summary()
    assert exit_.code == 0
    output = "\n".join(line.text for line in ingester.lines)
    assert len(ingester.lines) > 10, "expected a debug log"
    assert NEEDLE not in output, [line.text for line in ingester.lines if NEEDLE in line.text]


@pytest.mark.parametrize("wrong", ["clickhouse-password", "nats-password", "nats-token"])
async def test_wrong_credentials_end_start_up_with_one_line_and_no_retry_storm(
    nats_server_factory: Callable[..., NatsServer],
    clickhouse_server_factory: Callable[..., ClickHouseServer],
    unique: str,
    launch: ServiceLauncher,
    wrong: str,
) -> None:
    clickhouse = clickhouse_server_factory(
        users=[ClickHouseUser("default"), ClickHouseUser("writer", CH_PASSWORD)]
    )
    if wrong == "nats-token":
        nats = nats_server_factory(token=NATS_TOKEN)
        nats_env = {"NATS_TOKEN": "SECRET-wrong-token"}
    else:
        nats = nats_server_factory(user="ingester", password=NATS_PASSWORD)
        password = "SECRET-wrong" if wrong == "nats-password" else NATS_PASSWORD
        nats_env = {"NATS_USER": "ingester", "NATS_PASSWORD": password}
    ch_password = "SECRET-wrong" if wrong == "clickhouse-password" else CH_PASSWORD
    pipeline = default_pipeline(
        nats_url=f"nats://127.0.0.1:{nats.port}",
        clickhouse_url=f"clickhouse://writer:{ch_password}@127.0.0.1:{clickhouse.tcp_port}/",
        unique=unique,
        database="ponix",
        INGESTER_STARTUP_DEADLINE=30,
        **nats_env,
    )
    ingester = await launch.start(pipeline, ready=False)
    exit_ = await ingester.wait(within=20)
    errors = [line.text for line in ingester.lines if line.text.startswith("error: ")]
    expected = (
        "error: clickhouse.auth_failed"
        if wrong.startswith("clickhouse")
        else ("error: nats.auth_failed")
    )
    assert exit_.code == 1, ingester.tail()
    assert exit_.seconds < 10, f"{exit_.seconds:.1f}s: a wrong password is not worth waiting for"
    assert len(errors) == 1, ingester.tail()
    assert errors[0].startswith(expected), errors
    assert ingester.events("waiting for dependency") == [], "retried a rejected credential"
    assert NEEDLE not in "\n".join(line.text for line in ingester.lines)
    # Server side: how often were we turned away?
    if wrong.startswith("clickhouse"):
        log = clickhouse.error_log_path.read_text(errors="replace")
        rejected = log.count("Wrong password") + log.count("Authentication failed")
    else:
        rejected = nats.log_path.read_text(errors="replace").count("authentication error")
    assert 1 <= rejected <= 2, f"{rejected} rejected attempts"
