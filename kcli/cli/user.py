"""`kcli user`: SCRAM users of a cluster (KIP-554), as `rpk security user` and
`kafka-configs.sh --entity-type users --add-config SCRAM-...` manage them.

A password is never an argument (``ps`` shows arguments): it is read from a prompt on a
terminal, from one line of stdin with ``--password-stdin``, or from ``$KCLI_PASSWORD``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from kcli.cli.common import connect, emit, read_password, report
from kcli.cli.help import help_settings
from kcli.cli.options import command
from kcli.config import Options
from kcli.errors import NotFound
from kcli.output.model import Column, Result, Table

app = typer.Typer(help="SCRAM users: create, list, delete.", no_args_is_help=True,
                  **help_settings())

UserArg = Annotated[str, typer.Argument(metavar="USER", help="User name.", show_default=False)]
@command(app, "create")
def create(
    opts: Options,
    user: UserArg,
    mechanism: Annotated[str, typer.Option(
        "--mechanism", "-m", metavar="SCRAM-SHA-256|SCRAM-SHA-512",
        help="SCRAM mechanism.")] = "SCRAM-SHA-512",
    iterations: Annotated[int, typer.Option(
        "--iterations", min=4096, max=16384, help="PBKDF2 iterations.")] = 4096,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from the first line of stdin.")] = False,
) -> None:
    """Create a SCRAM user, or set a new password for one mechanism of an existing user."""
    from kcli.client.security import set_password

    password = read_password(password_stdin)
    set_password(connect(opts), user, mechanism, password, iterations)
    report(opts, f"user {user}: {mechanism.upper()} set ({iterations} iterations)",
           {"user": user, "mechanism": mechanism.upper(), "iterations": iterations})


@command(app, "list")
def list_(opts: Options) -> None:
    """SCRAM users with their mechanisms and iteration counts."""
    from kcli.client.security import list_users

    users = list_users(connect(opts))
    rows = [{"user": u.user, "mechanisms": ", ".join(f"{m} ({i})" for m, i in u.mechanisms)}
            for u in users]
    emit(opts, Result([u.to_dict() for u in users], (Table(
        (Column("user", "USER"), Column("mechanisms", "MECHANISMS (ITERATIONS)")), rows,
        empty="(no SCRAM users)"),)))


@command(app, "delete")
def delete(
    opts: Options,
    user: UserArg,
    mechanism: Annotated[str | None, typer.Option(
        "--mechanism", "-m", metavar="SCRAM-SHA-256|SCRAM-SHA-512",
        help="Only this mechanism [default: every one].")] = None,
) -> None:
    """Delete a SCRAM user's credentials."""
    from kcli.client.security import delete_user

    deleted = delete_user(connect(opts), user, mechanism)
    if not deleted:
        raise NotFound(f"user {user} has no SCRAM credentials")
    report(opts, f"user {user}: deleted {', '.join(deleted)}",
           {"user": user, "deleted": deleted})
