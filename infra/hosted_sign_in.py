"""The hosted sign-in's values AWS must accept, checked before `pulumi up` sends them (issue 15).

Pure functions, no Pulumi: the stack config checks the domain prefix when it loads, and the
Cognito component checks the page URL when the API's URL is known. AWS's own limits come from
botocore's cognito-idp model (infra/aws_catalog.py); the rest cite Cognito's documentation.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from infra import aws_catalog
from service.settings import SIGN_IN_SCOPES

# The app client allows what the page asks for by default: an ID token with the email.
OAUTH_SCOPES = SIGN_IN_SCOPES
# "You can't use the text aws, amazon, or cognito in the domain prefix"
# (https://docs.aws.amazon.com/cognito/latest/developerguide/cognito-user-pools-assign-domain-prefix.html).
RESERVED_DOMAIN_WORDS = ("aws", "amazon", "cognito")
# Hosted sign-in redirects only to https, except http://localhost for testing
# (https://docs.aws.amazon.com/cognito/latest/developerguide/user-pool-settings-client-apps.html).
_LOCALHOST = re.compile(r"http://localhost(:\d+)?(/.*)?")


def check_domain_prefix(prefix: str) -> str:
    """A Cognito prefix domain AWS would accept, or ValueError saying why not."""
    low, high, pattern = aws_catalog.cognito_domain_limits()
    if not low <= len(prefix) <= high or not re.fullmatch(pattern.strip("^$"), prefix):
        raise ValueError(
            f"Cognito domain prefix {prefix!r} must be {low}-{high} lowercase letters, digits "
            "and inner hyphens"
        )
    reserved = [word for word in RESERVED_DOMAIN_WORDS if word in prefix]
    if reserved:
        raise ValueError(f"Cognito domain prefix {prefix!r} must not contain {reserved}")
    return prefix


def check_redirect_url(url: str) -> str:
    """A callback or logout URL an app client accepts: AWS's RedirectUrlType, https (or localhost),
    no fragment (RFC 6749 section 3.1.2)."""
    low, high, _ = aws_catalog.cognito_redirect_url_limits()
    # RedirectUrlType's pattern is [\p{L}\p{M}\p{S}\p{N}\p{P}]+: no separators, no control characters.
    printable = all(unicodedata.category(c)[0] in "LMSNP" for c in url)
    if not low <= len(url) <= high or not printable:
        raise ValueError(f"redirect URL {url!r} must be {low}-{high} characters without spaces")
    if not (url.startswith("https://") or _LOCALHOST.fullmatch(url)) or "#" in url:
        raise ValueError(f"redirect URL {url!r} must be https (or http://localhost) without a fragment")
    return url


def page_url(api_url: str) -> str:
    """The page is the API's root; the hosted sign-in sends the browser back to it."""
    return check_redirect_url(api_url.rstrip("/") + "/")


def default_domain_prefix(stack_prefix: str, account_id: str) -> str:
    """`<project>-<stack>-<8 hex>`: prefix domains are unique per region across all accounts, so
    the account makes it unique, hashed so the public URL does not show the account id."""
    return f"{stack_prefix}-{hashlib.sha256(account_id.encode()).hexdigest()[:8]}"
