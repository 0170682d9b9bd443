"""Secrets out of everything shown or stored: keys in URLs and command lines become `***`.

A `--base-url` may carry a key (`?api-key=...`, the way some gateways take it) or a user and password
(`https://user:pass@host`, a proxy's basic auth). run.lock, messages, the cache namespace and progress
lines show such a URL through `redact`; `url_secrets` lists the values so that a server echoing one
in an error has it masked too (limits.scrubber).
"""

from __future__ import annotations

import re
from urllib.parse import unquote, unquote_plus, urlsplit, urlunsplit

MASK = "***"
# Query parameter names that carry a secret: key, api-key, api_key, apikey, subscription-key, token,
# access_token, secret, client_secret, password, passwd, pwd, sig, signature, auth, credential, session.
# Masking a harmless parameter only hides it from a message; missing a key leaks it, so the net is wide.
_SECRET_NAME = re.compile(r"key|token|secret|pass|pwd|sig|auth|credential|session|cookie", re.IGNORECASE)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def redact(text: str) -> str:
    """`text` (a command line, a message) with every URL in it redacted as `redact_url` does."""
    return _URL.sub(lambda found: redact_url(found.group()), text)


def redact_url(url: str) -> str:
    """`url` with its user info and every secret-looking query (or fragment) value replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:  # a malformed host ("http://[::1"): show the scheme alone rather than guess
        return url.partition("://")[0] + "://" + MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, _redact_pairs(parts.query), _redact_pairs(parts.fragment)))


def url_secrets(url: str | None) -> list[str]:
    """The secret values a URL carries (user info, secret-looking query values), as written and decoded."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found: list[str] = []
    if parts.username:
        found += [parts.username, unquote(parts.username)]
    if parts.password:
        found += [parts.password, unquote(parts.password)]
    for pairs in (parts.query, parts.fragment):
        for pair in pairs.split("&"):
            name, _, value = pair.partition("=")
            if value and is_secret_name(name):
                found += [value, unquote_plus(value)]
    return found


def is_secret_name(name: str) -> bool:
    """Whether a query parameter of this name carries a secret (api-key, token, sig ...)."""
    return bool(_SECRET_NAME.search(unquote_plus(name)))


def _redact_pairs(pairs: str) -> str:
    if not pairs:
        return pairs
    out = []
    for pair in pairs.split("&"):
        name, equals, value = pair.partition("=")
        out.append(f"{name}={MASK}" if equals and value and is_secret_name(name) else pair)
    return "&".join(out)
