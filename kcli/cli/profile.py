"""`kcli profile`: named clusters (bootstrap + librdkafka properties) in config.toml."""

from __future__ import annotations

from typing import Annotated

import typer

from kcli.cli.common import emit, report
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
) -> None:
    """Save this command line's -b and -X options as a profile.

    For example: kcli profile add prod -b kafka:9093 -X security.protocol=SASL_SSL
    -X sasl.mechanism=PLAIN -X sasl.username=me -X sasl.password=..."""
    store = _store()
    if name in store.profiles and not force:
        raise OperationFailed(f"profile {name!r} exists (use --force to replace it)")
    properties = parse_overrides(opts.flags.overrides)
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
