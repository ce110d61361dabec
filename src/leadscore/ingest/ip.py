"""IP addresses in event context are personal data: truncated (default) or hashed before storage.

``truncate`` keeps the network: IPv4 /24 (``203.0.113.77`` → ``203.0.113.0``), IPv6 /48.
``hash`` keeps a keyed HMAC-SHA256 (same address → same value, not reversible without the secret).
``keep`` stores the address as sent (only where a legal basis allows it). Invalid addresses are dropped.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from typing import Any, Literal

IpMode = Literal["truncate", "hash", "keep"]


_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# a dotted quad as ``ipaddress`` accepts it: decimal octets up to 255, no leading zeros, ASCII digits only
_IPV4 = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")


def _ipv4_network(text: str) -> str | None:
    """``a.b.c.0`` for a dotted-quad IPv4 address as ``ipaddress`` accepts it (no leading zeros), else
    None: the common case without building address and network objects (one regular expression: a
    backfill truncates an address a line)."""
    match = _IPV4.fullmatch(text)
    if match is None:
        return None
    return f"{match[1]}.{match[2]}.{match[3]}.0"


def protect_ip(value: Any, mode: IpMode, secret: str = "") -> str | None:
    if value is None or value == "":
        return None
    if mode == "truncate" and isinstance(value, str) and (fast := _ipv4_network(value.strip())) is not None:
        return fast
    try:
        address = ipaddress.ip_address(str(value).strip())
    except ValueError:
        return None
    if mode == "keep":
        return str(address)
    if mode == "hash":
        if not secret:
            raise ValueError("hashing IP addresses needs a secret key (LEADSCORE_SECRET_KEY)")
        digest = hmac.new(secret.encode(), str(address).encode(), hashlib.sha256).hexdigest()
        return f"hmac:{digest[:32]}"
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


def protect_context(context: dict[str, Any], mode: IpMode, secret: str = "") -> dict[str, Any]:
    """The context with its ``ip`` protected (or removed when invalid)."""
    if "ip" not in context:
        return context
    out = dict(context)
    ip = protect_ip(out.pop("ip"), mode, secret)
    if ip is not None:
        out["ip"] = ip
    return out
