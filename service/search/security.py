"""OpenSearch fine-grained access control for the platform, as data.

Three principals reach the domain, each an IAM role:

- the **provisioner** (`service.handlers.provision`) is the domain's master user. It
  applies this module's roles and mappings and creates the indexes during `pulumi up`,
  and nothing else runs with its credentials;
- the **ingester** (writer) bulk-writes and deletes chunks and lists a document's chunk
  ids through the read alias; it cannot create, delete or reconfigure indexes, so a bulk
  request to a missing index fails instead of auto-creating one with a guessed mapping;
- the **API** (reader) only searches through the read alias (`count` is a search too).

Fine-grained access control maps an IAM role to an OpenSearch role through the role's
ARN as a *backend role*
(https://docs.aws.amazon.com/opensearch-service/latest/developerguide/fgac.html#fgac-mapping).
Action names are OpenSearch's transport actions
(https://docs.opensearch.org/latest/security/access-control/permissions/).
The Pulumi program hashes `security_document` into the trigger of the provisioning
invocation, so a change here re-runs the provisioner on the next `pulumi up`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from service.contract import PROJECT

# A search through an alias: the API's only call. `_count` needs nothing more, as
# OpenSearch's RestCountAction runs it through the search action (size 0).
READ_ACTIONS = ("indices:data/read/search",)
# Bulk is checked once at cluster level and then per index on the shard-level action
# `indices:data/write/bulk[s]`, hence the trailing wildcard; `index`, `delete` and `update` are
# the bulk item types the ingester sends (`update`: a document's readers changed, issue 15);
# `search` lists a document's chunk ids.
WRITE_CLUSTER_ACTIONS = ("indices:data/write/bulk",)
WRITE_INDEX_ACTIONS = (
    "indices:data/read/search",
    "indices:data/write/bulk*",
    "indices:data/write/delete",
    "indices:data/write/index",
    "indices:data/write/update",
)


@dataclass(frozen=True)
class SecurityRole:
    """One OpenSearch role and the single IAM role (backend role) mapped to it."""

    name: str
    backend_role_arn: str
    index_patterns: tuple[str, ...]
    index_actions: tuple[str, ...]
    cluster_actions: tuple[str, ...] = ()

    def role_body(self) -> dict[str, Any]:
        """`PUT _plugins/_security/api/roles/<name>` body."""
        return {
            "description": f"{PROJECT}: {self.name} (managed by pulumi up)",
            "cluster_permissions": list(self.cluster_actions),
            "index_permissions": [
                {"index_patterns": list(self.index_patterns), "allowed_actions": list(self.index_actions)}
            ],
        }

    def mapping_body(self) -> dict[str, Any]:
        """`PUT _plugins/_security/api/rolesmapping/<name>` body: exactly one IAM role."""
        return {"backend_roles": [self.backend_role_arn], "users": [], "hosts": []}


def index_patterns(alias: str) -> tuple[str, ...]:
    """The read alias and its versioned indexes (`<alias>-v1`, ...), nothing else."""
    return (alias, f"{alias}-v*")


def platform_roles(alias: str, writer_role_arn: str, reader_role_arn: str) -> tuple[SecurityRole, ...]:
    """The writer (ingester) and reader (API) roles; the master user needs no role here."""
    if not writer_role_arn or not reader_role_arn:
        raise ValueError("both the writer and the reader role ARN are required")
    if writer_role_arn == reader_role_arn:
        raise ValueError("the writer and the reader must be different IAM roles")
    patterns = index_patterns(alias)
    return (
        SecurityRole(
            name=f"{PROJECT}-writer",
            backend_role_arn=writer_role_arn,
            index_patterns=patterns,
            index_actions=WRITE_INDEX_ACTIONS,
            cluster_actions=WRITE_CLUSTER_ACTIONS,
        ),
        SecurityRole(
            name=f"{PROJECT}-reader",
            backend_role_arn=reader_role_arn,
            index_patterns=patterns,
            index_actions=READ_ACTIONS,
        ),
    )


def security_document(roles: tuple[SecurityRole, ...]) -> dict[str, Any]:
    """Every role and mapping the provisioner applies, in one comparable document."""
    return {r.name: {"role": r.role_body(), "mapping": r.mapping_body()} for r in roles}


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-serialisable parts (the provisioning trigger)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
