"""Which pod is this? The StatefulSet ordinal from the pod's own name.

A StatefulSet names its pods `<set>-<ordinal>` and Kubernetes puts that name
in HOSTNAME (and, with the downward API, usually in POD_NAME), so a sidecar
needs no per-pod configuration: `lobby-3` is pod 3.
"""

from __future__ import annotations

import re
from typing import Mapping

from stroute import names
from stroute.errors import InvalidInput

ENV_VARS = ("POD_NAME", "HOSTNAME")
_ORDINAL_RE = re.compile(r"^.+-(\d+)$")


def ordinal(name: str) -> int | None:
    """The ordinal of a StatefulSet pod name (`lobby-3` -> 3), or None."""
    match = _ORDINAL_RE.match(name.strip())
    if match is None:
        return None
    try:
        return names.pod(match.group(1))
    except InvalidInput:
        return None


def pod_from_env(env: Mapping[str, str]) -> tuple[int, str]:
    """(pod, where it came from) from POD_NAME, else HOSTNAME.

    Raises InvalidInput naming what was seen when neither holds an ordinal.
    """
    seen = []
    for var in ENV_VARS:
        value = env.get(var)
        if not value:
            seen.append(f"{var} is not set")
            continue
        pod = ordinal(value)
        if pod is not None:
            return pod, f"{var}={value}"
        seen.append(f"{var}={value!r} has no '-N' ordinal in 0..{names.POD_MAX}")
    raise InvalidInput(
        "cannot tell which pod this is: " + "; ".join(seen),
        hint="pass --pod N, or run it in a StatefulSet pod named like 'lobby-3' (POD_NAME or HOSTNAME)",
    )
