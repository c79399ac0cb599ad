"""A throwaway CA and a serving certificate for 127.0.0.1.

TLS is not optional: kubectl (clientcmd) only reads a user's credentials when the server URL is
https, so over plain HTTP every request would arrive as system:anonymous. The CA goes into the
kubeconfig's certificate-authority-data; both are made once per process.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import ssl
import subprocess
import tempfile
from pathlib import Path


@functools.cache
def _pki() -> tuple[bytes, bytes, bytes]:
    """(CA certificate PEM, serving certificate PEM, serving key PEM).

    A separate CA and leaf with key identifiers: OpenSSL 3's strict verification (Python
    clients) rejects a lone self-signed serving certificate. `cryptography` when installed
    (it is not in the test extras), else the openssl command.
    """
    try:
        return _pki_cryptography()
    except ImportError:
        return _pki_openssl()


def _pki_cryptography() -> tuple[bytes, bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def usage(cert_sign: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=True, key_cert_sign=cert_sign, crl_sign=cert_sign,
            content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, encipher_only=False, decipher_only=False)

    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("distrodebug-k8s-double-ca")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + dt.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage(True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("kube-apiserver")).issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + dt.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return (ca.public_bytes(pem), leaf.public_bytes(pem),
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def _pki_openssl() -> tuple[bytes, bytes, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)

        def openssl(*args: str) -> None:
            subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "7",
                "-subj", "/CN=distrodebug-k8s-double-ca",
                "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
                "-addext", "keyUsage=critical,digitalSignature,keyCertSign,cRLSign",
                "-addext", "subjectKeyIdentifier=hash")
        openssl("req", "-new", *ec, "-keyout", "tls.key", "-out", "tls.csr",
                "-subj", "/CN=kube-apiserver")
        (d / "ext.cnf").write_text(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
        openssl("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", "tls.crt", "-days", "7", "-extfile", "ext.cnf")
        return ((d / "ca.crt").read_bytes(), (d / "tls.crt").read_bytes(),
                (d / "tls.key").read_bytes())


def ca_pem() -> bytes:
    return _pki()[0]


def server_context(workdir: Path) -> ssl.SSLContext:
    _, cert, key = _pki()
    with tempfile.NamedTemporaryFile(dir=workdir, suffix=".pem", delete=False) as f:
        f.write(cert + key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(f.name)
    Path(f.name).unlink()
    # http/1.1 only: kubectl must not negotiate h2, which cannot carry the WebSocket upgrade
    context.set_alpn_protocols(["http/1.1"])
    return context
