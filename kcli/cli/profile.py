"""`kcli profile`: named clusters (bootstrap + librdkafka properties) in config.toml."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kcli.cli.common import emit, read_password, report
from kcli.cli.help import help_settings
from kcli.cli.options import command
from kcli.config import (
    Options,
    Profile,
    ProfileStore,
    config_path,
    mask_properties,
    parse_overrides,
)
from kcli.errors import BadInput, OperationFailed

app = typer.Typer(help="Named connection profiles: bootstrap servers and client settings.\n\n"
                       "SASL/TLS settings are librdkafka properties given with -X.",
                  no_args_is_help=True, **help_settings())

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Profile name.",
                                        show_default=False)]


def _store() -> ProfileStore:
    return ProfileStore.load(config_path())


@command(app, "add", use_profiles=False)
def add(
    opts: Options,
    name: NameArg,
    use: Annotated[bool, typer.Option("--use", help="Make it the default profile.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing profile.")] = False,
    security_protocol: Annotated[str | None, typer.Option(
        "--security-protocol", metavar="PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL",
        help="security.protocol [default: from the other options].")] = None,
    sasl_mechanism: Annotated[str | None, typer.Option(
        "--sasl-mechanism", metavar="PLAIN|SCRAM-SHA-256|SCRAM-SHA-512",
        help="SASL mechanism; the password is asked for (or --password-stdin, "
             "$KCLI_PASSWORD).")] = None,
    username: Annotated[str | None, typer.Option(
        "--username", metavar="USER", help="SASL user name.")] = None,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the SASL password from the first line of stdin.")
    ] = False,
    ca_cert: Annotated[str | None, typer.Option(
        "--ca-cert", metavar="FILE", help="CA certificates to trust (PEM): TLS.")] = None,
    client_cert: Annotated[str | None, typer.Option(
        "--client-cert", metavar="FILE", help="Client certificate (PEM): mutual TLS.")] = None,
    client_key: Annotated[str | None, typer.Option(
        "--client-key", metavar="FILE", help="Client private key (PEM).")] = None,
) -> None:
    """Save this command line's -b and -X options as a profile.

    For example: kcli profile add prod -b kafka:9093 --sasl-mechanism SCRAM-SHA-512
    --username me --ca-cert ca.pem (asks for the password; it is kept in the 0600 config
    file, never on a command line)."""
    store = _store()
    if name in store.profiles and not force:
        raise OperationFailed(f"profile {name!r} exists (use --force to replace it)")
    properties = parse_overrides(opts.flags.overrides)
    properties.update(security_properties(
        properties, security_protocol, sasl_mechanism, username, password_stdin, ca_cert,
        client_cert, client_key))
    bootstrap = opts.flags.bootstrap or properties.pop("bootstrap.servers", None)
    if not bootstrap:
        raise BadInput("a profile needs bootstrap servers: give -b HOST:PORT")
    store = store.with_profile(Profile(name, bootstrap, properties))
    if use or (store.current is None and len(store.profiles) == 1):
        store = store.using(name)
    store.save()
    report(opts, f"saved profile {name} in {store.path}"
           + (" (default)" if store.current == name else ""),
           {"profile": name, "path": str(store.path), "default": store.current == name})


def security_properties(given: dict[str, str], protocol: str | None, mechanism: str | None,
                        username: str | None, password_stdin: bool, ca_cert: str | None,
                        client_cert: str | None, client_key: str | None) -> dict[str, str]:
    """librdkafka properties for the security options of `profile add`."""
    out: dict[str, str] = {}
    tls = any(v is not None for v in (ca_cert, client_cert, client_key))
    if mechanism is not None:
        if mechanism.upper() not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            raise BadInput(f"--sasl-mechanism: {mechanism!r} is not PLAIN, SCRAM-SHA-256 "
                           "or SCRAM-SHA-512")
        if not username:
            raise BadInput("--sasl-mechanism needs --username")
        out["sasl.mechanism"] = mechanism.upper()
        out["sasl.username"] = username
        if "sasl.password" not in given:
            out["sasl.password"] = read_password(password_stdin)
    elif username is not None or password_stdin:
        raise BadInput("--username and --password-stdin go with --sasl-mechanism")
    if (client_cert is None) != (client_key is None):
        raise BadInput("--client-cert and --client-key go together")
    for option, key, value in (("--ca-cert", "ssl.ca.location", ca_cert),
                               ("--client-cert", "ssl.certificate.location", client_cert),
                               ("--client-key", "ssl.key.location", client_key)):
        if value is not None:
            path = Path(value).expanduser()
            if not path.is_file():
                raise BadInput(f"{option}: {value} is not a file")
            out[key] = str(path.resolve())
    chosen = protocol or given.get("security.protocol") or (
        ("SASL_SSL" if tls else "SASL_PLAINTEXT") if mechanism else "SSL" if tls else None)
    if chosen is not None:
        if chosen.upper() not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
            raise BadInput(f"--security-protocol: {chosen!r} is not PLAINTEXT, SSL, "
                           "SASL_PLAINTEXT or SASL_SSL")
        out["security.protocol"] = chosen.upper()
    return out


@command(app, "list", use_profiles=False)
def list_(opts: Options) -> None:
    """Profiles, with secrets masked."""
    from kcli.output import Column, Result, Table

    store = _store()
    rows = []
    for name in sorted(store.profiles):
        profile = store.profiles[name]
        rows.append({"name": name, "current": name == store.current,
                     "bootstrap": profile.bootstrap,
                     "properties": mask_properties(profile.properties)})
    columns = (Column("name", "NAME"), Column("current", "DEFAULT", "bool"),
               Column("bootstrap", "BOOTSTRAP"), Column("properties", "PROPERTIES"))
    emit(opts, Result(rows, (Table(columns, rows, empty="(no profiles)"),)))


@command(app, "use", use_profiles=False)
def use(
    opts: Options,
    name: Annotated[str | None, typer.Argument(
        metavar="NAME", help="Profile to use by default.", show_default=False)] = None,
    none: Annotated[bool, typer.Option("--none", help="Use no profile by default.")] = False,
) -> None:
    """Choose the profile used when neither -p nor KCLI_PROFILE is given."""
    if (name is None) == (not none):
        raise BadInput("give a profile NAME or --none")
    store = _store().using(None if none else name)
    store.save()
    report(opts, f"default profile: {name}" if name else "no default profile",
           {"default": name})


@command(app, "remove", use_profiles=False)
def remove(opts: Options, name: NameArg) -> None:
    """Delete a profile."""
    store = _store().without(name)
    store.save()
    report(opts, f"removed profile {name}", {"removed": name})
