"""An ``ssl.SSLContext`` from a ``tls_server_config``, as close to Go's as Python's ssl allows.

Where Python's ssl cannot do what Go's crypto/tls does (documented in the README too):

- ``RequestClientCert``: dbpulse never reads a client's identity, so not asking for a
  certificate is the same to it; served as ``NoClientCert``.
- ``RequireAnyClientCert`` (or ``RequireClientCert``): Python's ssl verifies every
  certificate it asks for, so the certificate must chain to ``client_ca_file`` (stricter
  than Go, never looser); without a client CA it is a config error.
- ``cipher_suites`` set TLS 1.2 and older only, as in Go (TLS 1.3 suites are fixed).
- ``curve_preferences``: OpenSSL through Python's ssl pins one group; with several
  listed, OpenSSL's defaults (which include all four of Go's) apply.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dbpulse.http.webconfig import TLSServerConfig

__all__ = ["CIPHERS", "build_context", "sans_allowed"]

# Go's names (tls.CipherSuites) -> OpenSSL's; None: a TLS 1.3 suite, always on.
CIPHERS: dict[str, str | None] = {
    "TLS_AES_128_GCM_SHA256": None,
    "TLS_AES_256_GCM_SHA384": None,
    "TLS_CHACHA20_POLY1305_SHA256": None,
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    # Insecure, in older exporter-toolkit examples; OpenSSL 3 refuses them at its default
    # security level, so a list of only these fails to load (as it should).
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
}
CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1"}
CURVES["X25519"] = "X25519"
VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}


class TLSConfigError(ValueError):
    """The TLS files or settings cannot make a context; the message is one line."""


@contextmanager
def _pem_files(cert: str, key: str) -> Iterator[tuple[str, str]]:
    # load_cert_chain reads files only: inline PEM goes through a private temp dir.
    with tempfile.TemporaryDirectory(prefix="dbpulse-tls-") as tmp:
        paths = (os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem"))
        for path, text in zip(paths, (cert, key), strict=True):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
        yield paths


def _load_chain(context: ssl.SSLContext, tls: TLSServerConfig) -> None:
    if tls.cert_file and tls.key_file:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        return
    cert = tls.cert if tls.cert else Path(str(tls.cert_file)).read_text()
    key = tls.key if tls.key else Path(str(tls.key_file)).read_text()
    with _pem_files(cert, key) as (cert_path, key_path):
        context.load_cert_chain(cert_path, key_path)


def _client_auth(context: ssl.SSLContext, tls: TLSServerConfig) -> None:
    mode = tls.client_auth_type
    if mode in ("NoClientCert", "RequestClientCert"):
        return
    has_ca = bool(tls.client_ca_file or tls.client_ca)
    if mode in ("RequireAnyClientCert", "RequireClientCert") and not has_ca:
        raise TLSConfigError(
            f"client_auth_type {mode} needs client_ca_file with dbpulse (Python's ssl "
            "verifies every client certificate it asks for)"
        )
    if tls.client_ca_file:
        context.load_verify_locations(cafile=str(tls.client_ca_file))
    elif tls.client_ca:
        context.load_verify_locations(cadata=tls.client_ca)
    else:  # Go verifies against the system roots when no client CA is given
        context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    optional = mode == "VerifyClientCertIfGiven"
    context.verify_mode = ssl.CERT_OPTIONAL if optional else ssl.CERT_REQUIRED


def build_context(tls: TLSServerConfig) -> ssl.SSLContext:
    """A server context; raises TLSConfigError naming what is wrong (files are read here)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.minimum_version = VERSIONS[tls.min_version]
        context.maximum_version = VERSIONS[tls.max_version]
        _load_chain(context, tls)
        _client_auth(context, tls)
        suites = [CIPHERS[name] for name in tls.cipher_suites]
        openssl_names = [name for name in suites if name]
        if openssl_names:
            context.set_ciphers(":".join(openssl_names))
        if tls.prefer_server_cipher_suites:
            context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
        if len(tls.curve_preferences) == 1:
            context.set_ecdh_curve(CURVES[tls.curve_preferences[0]])
    except ssl.SSLError as exc:
        raise TLSConfigError(f"TLS: {exc.reason or exc.strerror or exc}") from None
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise TLSConfigError(f"cannot read TLS file{where}: {exc.strerror or exc}") from None
    # The ALPN answer Prometheus' Go client understands; HTTP/2 is not offered.
    context.set_alpn_protocols(["http/1.1"])
    return context


def sans_allowed(peer: ssl.SSLSocket, allowed: list[str]) -> bool:
    """exporter-toolkit's ``client_allowed_sans``: one SAN of the verified client cert listed."""
    cert = peer.getpeercert()
    if not cert:
        return False
    sans = cert.get("subjectAltName", ())
    names = [str(entry[1]) for entry in sans if isinstance(entry, tuple) and len(entry) == 2]
    return any(name in allowed for name in names)
