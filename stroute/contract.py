"""The JSON contract: every document a command prints names its schema.

A document (one JSON or YAML document, one NDJSON line of a watch or an
export) opens with `"schema": "stroute/<name>/v<VERSION>"`. A script checks
that one field and knows every other field's name, type and unit; each name
has a JSON Schema in docs/schemas/<name>.json. A change that breaks a script
(a key renamed or removed, a type or unit changed) makes a new version; a
new optional key does not.

Units are in the key names: `_s` seconds, `_ms` milliseconds, `_at_ms` a
moment as Unix time in milliseconds (by the Redis server's clock).
"""

from __future__ import annotations

from typing import Any

VERSION = 1

# Schema names, each the command (words joined by '-') whose output it describes.
# cordon and uncordon print one shape; config show prints a config file.
SCHEMAS = (
    "acl",
    "config",
    "config-validate",
    "demo",
    "doctor",
    "embedded-status",
    "embedded-stop",
    "export",
    "import",
    "link-batch-get",
    "link-clear",
    "link-count",
    "link-get",
    "link-list",
    "link-remove",
    "link-set",
    "link-try-set",
    "place",
    "pod-cordon",
    "pod-drain",
    "pod-forget",
    "pods",
    "serve",
    "tag-get",
    "tag-set",
    "top",
    "version",
)


def schema_id(name: str) -> str:
    """'stroute/NAME/v1' for a known schema name; a ValueError for any other."""
    if name not in SCHEMAS:
        raise ValueError(f"no schema named {name!r}: known are {', '.join(SCHEMAS)}")
    return f"stroute/{name}/v{VERSION}"


def document(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """data with its schema id as the first key (a "schema" already in data is replaced)."""
    return {"schema": schema_id(name), **{k: v for k, v in data.items() if k != "schema"}}
