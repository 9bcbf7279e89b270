"""Redaction applied before anything is stored, logged or displayed.

Covers kubeadm bootstrap tokens, kubeadm certificate keys, passwords and secrets in
`key=value` / `key: value` / JSON forms, bearer tokens, kubeconfig credentials and private keys.
Discovery hashes (`sha256:<hex>`) are public by design and kept.
"""

from __future__ import annotations

import re
import threading
from typing import Any

MASK = "<redacted>"

_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S
)
_KUBEADM_TOKEN = re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b")
_CERT_KEY_FLAG = re.compile(r"(--certificate-key[= ]\s*)([0-9a-fA-F]{16,})")
# `kubeadm init --upload-certs` prints "Using certificate key:\n<64 hex>"
_CERT_KEY_PRINTED = re.compile(r"(certificate[ -]key:?\s*)([0-9a-f]{64})", re.I)
_BEARER = re.compile(r"(\bBearer\s+)([A-Za-z0-9\-._~+/]+=*)")
_KUBECONFIG_CRED = re.compile(
    r"((?:client-key-data|client-certificate-data|token|id-token|refresh-token)\s*:\s*)(\S+)"
)
_SECRET_WORDS = r"(?:password|passwd|pass|secret|application_credential_secret|token|api[_-]?key|passphrase)"
_KV = re.compile(
    r"((?<![A-Za-z0-9])[\w.-]*" + _SECRET_WORDS + r"[\w-]*[\"']?\s*[:=]\s*[\"']?)(?!<redacted)([^\s\"',}]+)",
    re.I,
)
_CLI_FLAG = re.compile(r"(--(?:os-)?" + _SECRET_WORDS + r"[\w-]*[= ]\s*)(?!<redacted)(\S+)", re.I)

_SECRET_HINTS = ("pass", "secret", "token", "key")  # every _SECRET_WORDS match contains one of these
_known: set[str] = set()
_known_lock = threading.Lock()


def add_secret(value: str | None) -> None:
    """Remember a secret value (a typed sudo password, a cloud password) to mask it everywhere."""
    if value and len(value) >= 4:
        with _known_lock:
            _known.add(value)


def redact(text: str) -> str:
    if not text:
        return text
    out = _PRIVATE_KEY.sub("<redacted private key>", text)
    out = _CERT_KEY_FLAG.sub(lambda m: m.group(1) + MASK, out)
    out = _CERT_KEY_PRINTED.sub(lambda m: m.group(1) + MASK, out)
    out = _KUBEADM_TOKEN.sub("<redacted-token>", out)
    out = _BEARER.sub(lambda m: m.group(1) + MASK, out)
    out = _KUBECONFIG_CRED.sub(lambda m: m.group(1) + MASK, out)
    # _CLI_FLAG and _KV need one of the secret words: skip their (backtracking, slow on long
    # output such as a 5 MB log) scan when none occurs at all
    low = out.lower()
    if any(w in low for w in _SECRET_HINTS):
        out = _CLI_FLAG.sub(lambda m: m.group(1) + MASK, out)
        out = _KV.sub(lambda m: m.group(1) + (m.group(2) if m.group(2) == MASK else MASK), out)
    with _known_lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        out = out.replace(value, MASK)
    return out


_SECRET_KEY = re.compile(_SECRET_WORDS + r"|private_key|client-key-data|certificate[_-]key", re.I)


def redact_data(value: Any, key: str | None = None) -> Any:
    """Redact a JSON-like structure: values under secret-looking keys, and every string."""
    if key is not None and _SECRET_KEY.search(key) and isinstance(value, (str, bytes)) and value:
        return MASK
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_data(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(v) for v in value]
    return value
