"""Outbound webhooks: signing per the Standard Webhooks specification (signing.py) and the
endpoints a config may name (endpoints.py: an allowlist of hosts, private and loopback
addresses refused unless listed)."""

from server.webhooks.endpoints import Endpoint, check_endpoint, parse_endpoints
from server.webhooks.signing import SignedHeaders, new_secret, parse_secret, signed_headers

__all__ = ["Endpoint", "SignedHeaders", "check_endpoint", "new_secret", "parse_endpoints",
           "parse_secret", "signed_headers"]
