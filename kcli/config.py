"""Client configuration in one place: profiles, environment, flags and -X overrides.

Every command gets one frozen :class:`Options`, built once by :func:`resolve` from the
global flags. Precedence for the bootstrap servers:

    -b flag  >  --cluster flag  >  $KCLI_BOOTSTRAP  >  profile  >  local cluster
    >  localhost:9092

The local cluster is the one named by ``--cluster`` (or ``$KCLI_CLUSTER``), else the
only running one; see :mod:`kcli.local.registry`. localhost:9092 is used only when no
local cluster is known: a known but stopped one (or several running) is an error
raised when the command first connects, not a silent fallback.

The profile is the one named by ``-p``, else ``$KCLI_PROFILE``, else the file's
``current`` (set by ``kcli profile use``). librdkafka properties come from the profile,
then ``-X key=value`` (which wins).

Profiles live in ``$XDG_CONFIG_HOME/kcli/config.toml`` (fallback ``~/.config``), a file
created with mode 0600 because SASL/TLS secrets are plain librdkafka properties::

    current = "prod"

    [profiles.prod]
    bootstrap = "broker-1:9092,broker-2:9092"

    [profiles.prod.properties]
    "security.protocol" = "SASL_SSL"
    "sasl.mechanism" = "PLAIN"
    "sasl.username" = "me"
    "sasl.password" = "secret"
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from kcli.durable import write_atomically
from kcli.errors import BadInput, KcliError, NotFound

DEFAULT_BOOTSTRAP = "localhost:9092"
DEFAULT_TIMEOUT = 30.0
ENV_BOOTSTRAP = "KCLI_BOOTSTRAP"
ENV_PROFILE = "KCLI_PROFILE"
ENV_TIMEOUT = "KCLI_TIMEOUT"
ENV_CLUSTER = "KCLI_CLUSTER"
ENV_REGISTRY = "KCLI_REGISTRY"
REGISTRY_PREFIX = "schema.registry."
OUTPUT_FORMATS = ("table", "json", "jsonl")

_SECRET = re.compile(r"password|secret|jaas|token|key\.pem|credentials|user\.info",
                     re.IGNORECASE)
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


# ---------------------------------------------------------------------------- flags


@dataclass(frozen=True)
class GlobalFlags:
    """The global options exactly as typed on one command line (None = not given)."""

    bootstrap: str | None = None
    profile: str | None = None
    overrides: tuple[str, ...] = ()
    output: str | None = None
    quiet: bool = False
    debug: bool = False
    timeout: float | None = None
    cluster: str | None = None

    def then(self, later: GlobalFlags) -> GlobalFlags:
        """Combine flags given before the subcommand (self) with those given on the
        command itself (later): later values win, -X lists concatenate."""
        return GlobalFlags(
            bootstrap=later.bootstrap if later.bootstrap is not None else self.bootstrap,
            profile=later.profile if later.profile is not None else self.profile,
            overrides=self.overrides + later.overrides,
            output=later.output if later.output is not None else self.output,
            quiet=self.quiet or later.quiet,
            debug=self.debug or later.debug,
            timeout=later.timeout if later.timeout is not None else self.timeout,
            cluster=later.cluster if later.cluster is not None else self.cluster,
        )


@dataclass(frozen=True)
class Options:
    """Everything a command needs to know about where and how to talk to Kafka."""

    bootstrap: str
    bootstrap_source: str
    """Where the bootstrap came from: flag, env, profile, local cluster or default."""
    profile: str | None
    properties: Mapping[str, str]
    """librdkafka properties: the profile's, then -X overrides."""
    overrides: Mapping[str, str]
    """Only the -X properties given on the command line."""
    output: str
    output_explicit: bool
    quiet: bool = False
    debug: bool = False
    timeout: float = DEFAULT_TIMEOUT
    flags: GlobalFlags = field(default_factory=GlobalFlags, repr=False)
    bootstrap_problem: KcliError | None = field(default=None, repr=False)
    """Why there is no cluster to talk to (a stopped local cluster, several running):
    raised by :meth:`client_config`, so commands that never connect still run."""
    registry_properties: Mapping[str, str] = field(default_factory=dict)
    """``schema.registry.*`` properties (profile, then -X): the Schema Registry client's
    settings, kept out of the librdkafka configuration."""
    local_registry: str | None = None
    """The Schema Registry URL of the local cluster the bootstrap came from."""
    env_registry: str | None = None
    """``$KCLI_REGISTRY``."""

    def registry_config(self, url: str | None = None) -> dict[str, Any] | None:
        """The SchemaRegistryClient configuration, or None when no registry is known.
        The URL: ``url`` (``--registry``), else ``$KCLI_REGISTRY``, else the profile's
        (or -X) ``schema.registry.url``, else the local cluster's registry. Other
        ``schema.registry.X`` properties become the client's ``X`` (basic.auth.user.info,
        ssl.ca.location, ssl.certificate.location, ssl.key.location, ...)."""
        chosen = (url or self.env_registry
                  or self.registry_properties.get(REGISTRY_PREFIX + "url")
                  or (self.local_registry if self.bootstrap_source == "local cluster"
                      else None))
        if not chosen or chosen.lower() == "none":
            return None
        config: dict[str, Any] = {key.removeprefix(REGISTRY_PREFIX): value
                                  for key, value in self.registry_properties.items()}
        config["url"] = chosen
        return config

    def client_config(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A confluent-kafka configuration dict: bootstrap, then ``extra`` (kcli's own
        tuning), then the profile and -X properties, which win. Raises the
        bootstrap problem, if there is one."""
        if self.bootstrap_problem is not None:
            raise self.bootstrap_problem
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap}
        if not self.debug:
            config["log_level"] = 0  # client chatter is not for users; --debug shows it
        config.update(extra or {})
        config.update(self.properties)
        return config


def parse_overrides(values: Sequence[str]) -> dict[str, str]:
    """Parse repeated ``key=value`` strings; raises BadInput on a malformed one."""
    result: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BadInput(f"-X expects key=value, got {item!r}")
        result[key] = value
    return result


def resolve(
    flags: GlobalFlags,
    *,
    environ: Mapping[str, str] | None = None,
    stdout_isatty: bool | None = None,
    config_file: Path | None = None,
    use_profiles: bool = True,
) -> Options:
    """Build the one Options object of a command from its flags, env and config file."""
    env = os.environ if environ is None else environ
    overrides = parse_overrides(flags.overrides)
    problem: KcliError | None = None

    if flags.output is not None and flags.output not in OUTPUT_FORMATS:
        raise BadInput(f"unknown output format {flags.output!r} (choose from "
                       f"{', '.join(OUTPUT_FORMATS)}){_position_hint(flags.output)}")
    if stdout_isatty is None:
        stdout_isatty = sys.stdout.isatty()
    output = flags.output or ("table" if stdout_isatty else "json")

    profile_name = flags.profile or env.get(ENV_PROFILE) or None
    store: ProfileStore | None = None
    if not use_profiles:
        profile_name = None
    elif profile_name is not None or config_file is not None or _config_exists(env):
        store = ProfileStore.load(config_file or config_path(env))
        if profile_name is None:
            profile_name = store.current
    profile: Profile | None = None
    if profile_name is not None:
        assert store is not None
        profile = store.get(profile_name)

    properties: dict[str, str] = dict(profile.properties) if profile else {}
    profile_bootstrap = properties.pop("bootstrap.servers", None)
    if profile is not None and profile.bootstrap:
        profile_bootstrap = profile.bootstrap
    properties.update(overrides)
    x_bootstrap = properties.pop("bootstrap.servers", None)
    registry_properties = {key: properties.pop(key) for key in list(properties)
                           if key.startswith(REGISTRY_PREFIX)}
    local_registry: str | None = None
    login: dict[str, str] = {}

    if flags.bootstrap:
        bootstrap, source = flags.bootstrap, "flag"
    elif x_bootstrap:
        bootstrap, source = x_bootstrap, "flag"
    elif flags.cluster:
        bootstrap, source, problem, local_registry, login = _local_bootstrap(flags.cluster)
    elif env.get(ENV_BOOTSTRAP):
        bootstrap, source = env[ENV_BOOTSTRAP], "env"
    elif profile_bootstrap:
        bootstrap, source = profile_bootstrap, "profile"
    else:
        bootstrap, source, problem, local_registry, login = _local_bootstrap(
            flags.cluster or env.get(ENV_CLUSTER))
    # a secured local cluster's login, under whatever the profile and -X say
    properties = {**login, **properties}

    timeout = flags.timeout
    if timeout is None and env.get(ENV_TIMEOUT):
        try:
            timeout = float(env[ENV_TIMEOUT])
        except ValueError:
            raise BadInput(f"{ENV_TIMEOUT} must be a number of seconds") from None
    if timeout is not None and timeout <= 0:
        raise BadInput("--timeout must be a positive number of seconds")

    return Options(
        bootstrap=bootstrap,
        bootstrap_source=source,
        profile=profile.name if profile else None,
        properties=MappingProxyType(properties),
        overrides=MappingProxyType(overrides),
        output=output,
        output_explicit=flags.output is not None,
        quiet=flags.quiet,
        debug=flags.debug,
        timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
        flags=flags,
        bootstrap_problem=problem,
        registry_properties=MappingProxyType(registry_properties),
        local_registry=local_registry,
        env_registry=env.get(ENV_REGISTRY) or None,
    )


def _position_hint(value: str) -> str:
    """kcat and rpk read -o as a start offset; kcli's -o is the output format."""
    lowered = value.strip().lower()
    if lowered in ("beginning", "start", "end", "earliest", "latest", "oldest", "newest",
                   "stored") or lowered.lstrip("-+").isdigit():
        where = {"start": "beginning", "earliest": "beginning", "oldest": "beginning",
                 "latest": "end", "newest": "end"}.get(lowered, lowered)
        return f"; did you mean --from {where}?"
    return ""


def _local_bootstrap(name: str | None,
                     ) -> tuple[str, str, KcliError | None, str | None, dict[str, str]]:
    """(bootstrap, source, problem, schema registry URL, client login properties) from
    the local-cluster registry."""
    from kcli.local.registry import choose

    try:
        chosen = choose(name)
    except KcliError as error:
        return DEFAULT_BOOTSTRAP, "local cluster", error, None, {}
    if chosen is None:
        return DEFAULT_BOOTSTRAP, "default", None, None, {}
    return (chosen.bootstrap, "local cluster", None, chosen.schema_registry,
            chosen.client_properties())


# ---------------------------------------------------------------------------- profiles


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/kcli/config.toml``, falling back to ``~/.config``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "kcli" / "config.toml"


def _config_exists(env: Mapping[str, str]) -> bool:
    return config_path(env).is_file()


def is_secret(key: str) -> bool:
    """Whether a librdkafka property holds a secret that must never be printed."""
    return bool(_SECRET.search(key))


def mask_properties(properties: Mapping[str, str]) -> dict[str, str]:
    """A copy safe to print: secret values replaced by ``****``."""
    return {k: ("****" if is_secret(k) else v) for k, v in properties.items()}


@dataclass(frozen=True)
class Profile:
    """A named cluster: bootstrap servers and librdkafka properties (SASL, TLS, ...)."""

    name: str
    bootstrap: str | None
    properties: Mapping[str, str]


@dataclass(frozen=True)
class ProfileStore:
    """The profiles file, read once; changes return a new store to ``save``."""

    path: Path
    profiles: Mapping[str, Profile]
    current: str | None = None

    @classmethod
    def load(cls, path: Path) -> ProfileStore:
        """Read the file; a missing file is an empty store. Raises BadInput if malformed."""
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            return cls(path, {})
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise BadInput(f"cannot read {path}: {error}") from None
        profiles: dict[str, Profile] = {}
        raw = data.get("profiles", {})
        if not isinstance(raw, dict):
            raise BadInput(f"{path}: [profiles] must be a table")
        for name, body in raw.items():
            if not isinstance(body, dict):
                raise BadInput(f"{path}: profile {name!r} must be a table")
            bootstrap = body.get("bootstrap")
            props = body.get("properties", {})
            if bootstrap is not None and not isinstance(bootstrap, str):
                raise BadInput(f"{path}: profile {name!r}: bootstrap must be a string")
            if not isinstance(props, dict):
                raise BadInput(f"{path}: profile {name!r}: properties must be a table")
            profiles[name] = Profile(
                name, bootstrap, MappingProxyType({str(k): _scalar(v) for k, v in props.items()})
            )
        current = data.get("current")
        if current is not None and not isinstance(current, str):
            raise BadInput(f"{path}: current must be a string")
        return cls(path, MappingProxyType(profiles), current)

    def get(self, name: str) -> Profile:
        """The named profile; raises NotFound listing the known names."""
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(sorted(self.profiles)) or "none defined"
            # rpk's `topic create -p 3` means partitions; here -p is the global --profile.
            hint = "-p is --profile; partitions are -P/--partitions" if name.isdigit() else None
            raise NotFound(f"no profile named {name!r} (profiles: {known})", hint=hint) from None

    def with_profile(self, profile: Profile) -> ProfileStore:
        """A store with ``profile`` added or replaced."""
        if not _PROFILE_NAME.fullmatch(profile.name):
            raise BadInput(
                f"profile names use letters, digits, '.', '_' and '-', not {profile.name!r}"
            )
        profiles = dict(self.profiles)
        profiles[profile.name] = profile
        return replace(self, profiles=MappingProxyType(profiles))

    def without(self, name: str) -> ProfileStore:
        """A store without the named profile (NotFound if absent)."""
        self.get(name)
        profiles = {k: v for k, v in self.profiles.items() if k != name}
        current = None if self.current == name else self.current
        return replace(self, profiles=MappingProxyType(profiles), current=current)

    def using(self, name: str | None) -> ProfileStore:
        """A store whose default profile is ``name`` (None: no default)."""
        if name is not None:
            self.get(name)
        return replace(self, current=name)

    def to_toml(self) -> str:
        """The file's text."""
        data: dict[str, Any] = {}
        if self.current is not None:
            data["current"] = self.current
        profiles: dict[str, Any] = {}
        for name in sorted(self.profiles):
            profile = self.profiles[name]
            body: dict[str, Any] = {}
            if profile.bootstrap is not None:
                body["bootstrap"] = profile.bootstrap
            body["properties"] = dict(profile.properties)
            profiles[name] = body
        data["profiles"] = profiles
        header = "# kcli profiles, written by `kcli profile`. May hold credentials: keep it 0600.\n"
        return header + toml_dumps(data)

    def save(self) -> None:
        """Write atomically; the file (and any new directory) is private to the user."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomically(self.path, self.to_toml().encode("utf-8"), mode=0o600)


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise BadInput(f"profile properties must be strings, numbers or booleans, not {value!r}")


# ---------------------------------------------------------------------------- TOML writer

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
            "\r": "\\r"}


def _toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def toml_dumps(data: Mapping[str, Any], _prefix: tuple[str, ...] = ()) -> str:
    """Serialise nested dicts of strings, numbers, booleans and lists as TOML text.
    Enough for the profiles file; ``tomllib.loads(toml_dumps(d)) == d``."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            tables.append((key, value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    text = "\n".join(lines) + ("\n" if lines else "")
    for key, table in tables:
        path = (*_prefix, key)
        has_scalars = any(not isinstance(v, Mapping) for v in table.values())
        body = toml_dumps(table, path)
        if has_scalars or not table:
            header = "[" + ".".join(_toml_key(p) for p in path) + "]\n"
            text += ("\n" if text else "") + header + body
        else:
            text += body
    return text
