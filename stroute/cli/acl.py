"""`stroute acl`: the Redis ACL rule that confines a user to one namespace.

It prints the rule and talks to no Redis: an operator applies it as an admin,
e.g. `stroute -n prod acl | redis-cli --user admin --askpass`.
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from stroute.cli.context import Globals
from stroute.cli.help import examples
from stroute.cli.output import emit, info


@examples("stroute -n game acl", "stroute -n game acl --user game-rw --no-scan")
def acl(
    ctx: typer.Context,
    user: Annotated[
        Optional[str],
        typer.Option("--user", metavar="NAME", help="Redis user name. Default: stroute-NAMESPACE.",
                     show_default=False),
    ] = None,
    no_scan: Annotated[
        bool,
        typer.Option("--no-scan", help="Leave SCAN out: the user cannot see other namespaces' key names, "
                     "and 'link list' and doctor's link checks do not work."),
    ] = False,
) -> None:
    """Print the ACL rule that confines a Redis user to a namespace.

    An ACL SETUSER line for the namespace given with -n.

    The user may touch only the namespace's keys and run only the commands
    stroute sends. The rule sets no password: add one with
    'ACL SETUSER NAME >PASSWORD'.
    """
    from stroute import acl as acl_module

    g: Globals = ctx.obj
    config = g.config()
    rule = acl_module.rule(config.namespace, prefix=config.prefix, user=user, scan=not no_scan,
                           layout=config.layout)
    data = {
        "namespace": rule.namespace,
        "user": rule.user,
        "rule": rule.command(),
        "arguments": rule.arguments(),
        "keys": list(rule.keys),
        "commands": list(rule.commands),
        "channels": list(rule.channels),
        "scan": not no_scan,
    }
    if g.for_people:
        sys.stdout.write(rule.command() + "\n")  # one line redis-cli reads as it is
    else:
        emit(data, g.output, schema="acl")
    info(f"give {rule.user} a password with: ACL SETUSER {rule.user} >PASSWORD; then run stroute as "
         f"redis://{rule.user}:PASSWORD@HOST:PORT/0 with -n {rule.namespace}")
    if not no_scan:
        info("note: SCAN lists the key names of every namespace (not their values); --no-scan leaves it out")
