"""Broker settings and topic configs: names, types, defaults and validation.

Topic configs default to a broker setting (their "synonym", as Kafka calls it), so
DescribeConfigs can report each value's source truthfully: a topic override
(DYNAMIC_TOPIC_CONFIG), a setting given to this broker at start (STATIC_BROKER_CONFIG)
or the built-in default (DEFAULT_CONFIG).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum

LONG_MAX = 9223372036854775807
INT_MAX = 2147483647


class ConfigType(IntEnum):
    """DescribeConfigs config_type codes."""

    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7
    CLASS = 8
    PASSWORD = 9


class ConfigSource(IntEnum):
    """DescribeConfigs config_source codes."""

    UNKNOWN = 0
    DYNAMIC_TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5


class InvalidConfig(ValueError):
    """A config name or value is not acceptable; the message says why."""


@dataclass(frozen=True, slots=True)
class ConfigDef:
    """One known config: its type, default, constraint and documentation."""

    name: str
    type: ConfigType
    default: str | None
    doc: str
    check: Callable[[str], None] | None = None
    read_only: bool = False

    def validate(self, value: str | None) -> str | None:
        """Return the normalised value or raise InvalidConfig."""
        if value is None:
            if self.default is None:
                return None
            raise InvalidConfig(f"{self.name} may not be null")
        value = value.strip()
        try:
            if self.type in (ConfigType.INT, ConfigType.LONG, ConfigType.SHORT):
                number = int(value)
                limit = INT_MAX if self.type is ConfigType.INT else LONG_MAX
                if not -limit - 1 <= number <= limit:
                    raise InvalidConfig(f"{self.name}={value} is out of range")
                value = str(number)
            elif self.type is ConfigType.DOUBLE:
                value = str(float(value))
            elif self.type is ConfigType.BOOLEAN:
                lowered = value.lower()
                if lowered not in ("true", "false"):
                    raise InvalidConfig(f"{self.name} must be true or false, not {value!r}")
                value = lowered
        except ValueError as error:
            if isinstance(error, InvalidConfig):
                raise
            kind = self.type.name.lower()
            raise InvalidConfig(f"{self.name}={value!r} is not a valid {kind}") from None
        if self.check is not None:
            self.check(value)
        return value


def _at_least(minimum: int) -> Callable[[str], None]:
    def check(value: str) -> None:
        if int(value) < minimum:
            raise InvalidConfig(f"value {value} must be at least {minimum}")

    return check


def _one_of(*choices: str) -> Callable[[str], None]:
    def check(value: str) -> None:
        if value not in choices:
            raise InvalidConfig(f"value {value!r} must be one of {', '.join(choices)}")

    return check


SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def _mechanisms(value: str) -> None:
    unknown = [m for m in value.split(",") if m.strip() and m.strip() not in SASL_MECHANISMS]
    if unknown:
        raise InvalidConfig(f"SASL mechanism {unknown[0]!r} is not one of "
                            f"{', '.join(SASL_MECHANISMS)}")


AUTHORIZERS = ("org.apache.kafka.metadata.authorizer.StandardAuthorizer",
               "kafka.security.authorizer.AclAuthorizer")


def _authorizer(value: str) -> None:
    if value and value not in AUTHORIZERS:
        raise InvalidConfig(f"authorizer.class.name: {value} is not one of "
                            f"{', '.join(AUTHORIZERS)}")


def _jaas(value: str) -> None:
    from kcli.broker.security.jaas import parse_jaas  # it raises our InvalidConfig

    parse_jaas(value)


def _cleanup_policy(value: str) -> None:
    parts = [part.strip() for part in value.split(",") if part.strip()]
    if not parts or any(part not in ("delete", "compact") for part in parts):
        raise InvalidConfig(f"cleanup.policy {value!r} must be delete, compact or both")


def _ratio(value: str) -> None:
    if not 0.0 <= float(value) <= 1.0:
        raise InvalidConfig(f"value {value} must be between 0 and 1")


_L, _I, _B = ConfigType.LONG, ConfigType.INT, ConfigType.BOOLEAN
_S, _D = ConfigType.STRING, ConfigType.DOUBLE

BROKER_SETTINGS: dict[str, ConfigDef] = {
    d.name: d
    for d in (
        ConfigDef("node.id", _I, "1", "This broker's id.", read_only=True),
        ConfigDef("auto.create.topics.enable", _B, "true",
                  "Create a topic when a client asks Metadata for one that does not exist."),
        ConfigDef("num.partitions", _I, "1", "Partitions of an auto-created topic.", _at_least(1)),
        ConfigDef("default.replication.factor", ConfigType.SHORT, "1",
                  "Replication factor of auto-created topics and of creates that leave it unset.",
                  _at_least(1)),
        ConfigDef("delete.topic.enable", _B, "true", "Allow DeleteTopics."),
        ConfigDef("max.broker.partitions", _I, "-1",
                  "Most partition replicas one broker may host (KIP-578's name); -1: as many as "
                  "the log files it keeps open at once (half its open-file limit; client "
                  "connections may use the other half).", _at_least(-1)),
        ConfigDef("message.max.bytes", _I, "1048588", "Largest record batch a topic accepts.",
                  _at_least(0)),
        ConfigDef("socket.request.max.bytes", _I, "104857600", "Largest request frame accepted.",
                  _at_least(1)),
        # Connection limits, as Kafka names and defaults them.
        ConfigDef("queued.max.request.bytes", _L, "-1",
                  "Request bytes buffered over all connections (received, not yet answered) "
                  "before connections stop reading until some are answered; -1: no limit.",
                  _at_least(-1)),
        ConfigDef("max.connections", _I, str(INT_MAX),
                  "Most client connections at once; a connection beyond it is closed at once.",
                  _at_least(0)),
        ConfigDef("max.connections.per.ip", _I, str(INT_MAX),
                  "Most connections from one IP address; a connection beyond it is closed at "
                  "once.", _at_least(0)),
        ConfigDef("connections.max.idle.ms", _L, "600000",
                  "A connection that sent and received nothing for this long is closed.",
                  _at_least(1)),
        ConfigDef("socket.request.read.timeout.ms", _L, "60000",
                  "A request frame must arrive whole within this long of its first byte, or "
                  "the connection is closed (not a Kafka setting: librdkafka's "
                  "socket.timeout.ms, 60000, is as long as any client waits for a request).",
                  _at_least(1)),
        # Listeners and security, as Kafka names them (kcli/broker/security). Each ssl.*,
        # sasl.* and connections.max.reauth.ms setting may also be given for one
        # listener as listener.name.<listener>.<setting>, which wins for that listener.
        ConfigDef("listeners", ConfigType.LIST, None,
                  "NAME://HOST:PORT,... to listen on (port 0: any free port); default: "
                  "PLAINTEXT on the --listen address.", read_only=True),
        ConfigDef("advertised.listeners", ConfigType.LIST, None,
                  "NAME://HOST:PORT,... to give clients (default: listeners).", read_only=True),
        ConfigDef("listener.security.protocol.map", ConfigType.LIST,
                  "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
                  "NAME:PROTOCOL for each listener name that is not a protocol.", read_only=True),
        ConfigDef("inter.broker.listener.name", _S, None,
                  "The listener brokers use between themselves (default: the first).",
                  read_only=True),
        ConfigDef("sasl.enabled.mechanisms", ConfigType.LIST,
                  "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
                  "SASL mechanisms a SASL listener offers (Kafka's default is GSSAPI, which "
                  "kcli does not have).", _mechanisms, read_only=True),
        ConfigDef("sasl.mechanism.inter.broker.protocol", _S, "PLAIN",
                  "The mechanism brokers log in with on a SASL inter-broker listener, with "
                  "the username and password of its JAAS config.", _mechanisms,
                  read_only=True),
        ConfigDef("sasl.jaas.config", ConfigType.PASSWORD, None,
                  "A JAAS login module line: PlainLoginModule's user_NAME=\"password\" "
                  "options are PLAIN's users; username and password are the broker's own "
                  "login. Usually given per listener and mechanism, as "
                  "listener.name.<listener>.plain.sasl.jaas.config.", _jaas, read_only=True),
        ConfigDef("ssl.keystore.type", _S, "PEM",
                  "PEM only: the certificate chain and its key in one file (convert JKS or "
                  "PKCS12 with keytool/openssl).", _one_of("PEM"), read_only=True),
        ConfigDef("ssl.keystore.location", _S, None,
                  "PEM file with the broker's certificate chain and private key.",
                  read_only=True),
        ConfigDef("ssl.key.password", ConfigType.PASSWORD, None,
                  "Password of the private key, if it is encrypted.", read_only=True),
        ConfigDef("ssl.truststore.type", _S, "PEM", "PEM only.", _one_of("PEM"),
                  read_only=True),
        ConfigDef("ssl.truststore.location", _S, None,
                  "PEM file of the CAs whose client (and broker) certificates are trusted.",
                  read_only=True),
        ConfigDef("ssl.client.auth", _S, "none",
                  "required, requested or none: whether TLS clients must show a certificate "
                  "(its subject becomes the principal, User:CN=...).",
                  _one_of("required", "requested", "none"), read_only=True),
        ConfigDef("connections.max.reauth.ms", _L, "0",
                  "A SASL session lasts this long, then the client must re-authenticate "
                  "(KIP-368); 0: forever.", _at_least(0), read_only=True),
        ConfigDef("connection.failed.authentication.delay.ms", _I, "100",
                  "How long a failed authentication's connection stays open before it is "
                  "closed (slows password guessing).", _at_least(0), read_only=True),
        ConfigDef("authorizer.class.name", _S, "",
                  "Turns ACLs on: org.apache.kafka.metadata.authorizer.StandardAuthorizer "
                  "(or kafka.security.authorizer.AclAuthorizer); empty: every request is "
                  "allowed.", _authorizer, read_only=True),
        ConfigDef("super.users", _S, "",
                  "Principals allowed everything, ';'-separated (User:admin;User:CN=broker).",
                  read_only=True),
        ConfigDef("allow.everyone.if.no.acl.found", _B, "false",
                  "Allow access to a resource that has no ACL at all.", None, read_only=True),
        ConfigDef("compression.type", _S, "producer", "Default topic compression.",
                  _one_of("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd")),
        ConfigDef("log.cleanup.policy", ConfigType.LIST, "delete", "Default cleanup policy.",
                  _cleanup_policy),
        ConfigDef("log.retention.ms", _L, "604800000", "Default time retention (-1: none)."),
        ConfigDef("log.retention.bytes", _L, "-1", "Default size retention per partition."),
        ConfigDef("log.retention.check.interval.ms", _L, "300000",
                  "How often the retention task runs.", _at_least(1)),
        ConfigDef("log.segment.bytes", _I, "1073741824", "Default segment size.", _at_least(14)),
        ConfigDef("log.roll.ms", _L, "604800000", "Default segment age before a roll.",
                  _at_least(1)),
        ConfigDef("log.roll.jitter.ms", _L, "0", "Default random jitter of segment rolls."),
        ConfigDef("log.index.interval.bytes", _I, "4096", "Bytes between index entries.",
                  _at_least(0)),
        ConfigDef("log.index.size.max.bytes", _I, "10485760", "Largest index file.",
                  _at_least(4)),
        ConfigDef("log.flush.interval.messages", _L, str(LONG_MAX),
                  "fsync after this many records (default: leave flushing to the OS and rolls).",
                  _at_least(1)),
        ConfigDef("log.flush.interval.ms", _L, str(LONG_MAX),
                  "fsync when this long has passed since the last fsync.", _at_least(0)),
        ConfigDef("log.segment.delete.delay.ms", _L, "60000", "Delay before deleting files."),
        ConfigDef("auto.leader.rebalance.enable", _B, "true",
                  "Give partitions back to their preferred replica once it is in sync.", None),
        ConfigDef("leader.imbalance.check.interval.seconds", _L, "300",
                  "How often the controller checks for leaders to give back.", _at_least(1)),
        ConfigDef("log.message.downconversion.enable", _B, "true",
                  "Whether a Fetch below v4 gets stored batches down-converted to the old "
                  "message format (false: UNSUPPORTED_VERSION).", None),
        ConfigDef("log.message.timestamp.type", _S, "CreateTime", "Default timestamp type.",
                  _one_of("CreateTime", "LogAppendTime")),
        ConfigDef("log.message.timestamp.before.max.ms", _L, str(LONG_MAX),
                  "How far in the past a record timestamp may be.", _at_least(0)),
        ConfigDef("log.message.timestamp.after.max.ms", _L, "3600000",
                  "How far in the future a record timestamp may be.", _at_least(0)),
        ConfigDef("log.cleaner.delete.retention.ms", _L, "86400000",
                  "How long tombstones are kept on compacted topics."),
        ConfigDef("log.cleaner.min.cleanable.ratio", _D, "0.5",
                  "Dirty ratio that makes a log eligible for compaction.", _ratio),
        ConfigDef("log.cleaner.min.compaction.lag.ms", _L, "0",
                  "Minimum age of a record before it can be compacted."),
        ConfigDef("log.cleaner.max.compaction.lag.ms", _L, str(LONG_MAX),
                  "Maximum time a record stays uncompacted.", _at_least(1)),
        ConfigDef("log.cleaner.enable", _B, "true",
                  "Run the log cleaner, which compacts topics with cleanup.policy=compact."),
        ConfigDef("log.cleaner.backoff.ms", _L, "15000",
                  "How long the cleaner sleeps when no log needs cleaning.", _at_least(0)),
        ConfigDef("log.cleaner.dedupe.buffer.size", _L, "134217728",
                  "Memory for the cleaner's key -> offset map; a round stops where it fills.",
                  _at_least(1024)),
        ConfigDef("log.cleaner.io.max.bytes.per.second", _D, "1.7976931348623157E308",
                  "Bytes the cleaner reads and writes per second at most."),
        ConfigDef("log.preallocate", _B, "false", "Preallocate segment files (ignored)."),
        ConfigDef("min.insync.replicas", _I, "1",
                  "In-sync replicas required for acks=all writes.", _at_least(1)),
        ConfigDef("unclean.leader.election.enable", _B, "false",
                  "Allow an out-of-sync replica to become leader."),
        # Replication between the brokers of a cluster.
        ConfigDef("replica.lag.time.max.ms", _L, "30000",
                  "A follower that has not caught up with the leader's log end for this long "
                  "leaves the in-sync replicas.", _at_least(1)),
        ConfigDef("replica.fetch.wait.max.ms", _I, "500",
                  "How long a follower's fetch waits at the leader for new records.",
                  _at_least(0)),
        ConfigDef("replica.fetch.max.bytes", _I, "1048576",
                  "Bytes a follower asks for per partition in one fetch.", _at_least(0)),
        ConfigDef("replica.fetch.response.max.bytes", _I, "10485760",
                  "Bytes a follower asks for in one fetch, over all partitions.", _at_least(0)),
        ConfigDef("replica.fetch.backoff.ms", _I, "100",
                  "Pause after a failed follower fetch before the next one (Kafka's default "
                  "is 1000; a local cluster retries sooner).", _at_least(0)),
        # The group coordinator (classic protocol) and its offsets topic.
        ConfigDef("group.min.session.timeout.ms", _I, "6000",
                  "Shortest session timeout a JoinGroup may ask for.", _at_least(1)),
        ConfigDef("group.max.session.timeout.ms", _I, "1800000",
                  "Longest session timeout a JoinGroup may ask for.", _at_least(1)),
        ConfigDef("group.initial.rebalance.delay.ms", _I, "0",
                  "How long the first rebalance of an empty group waits for more members to "
                  "join. Kafka's default is 3000; a local dev broker answers at once (0).",
                  _at_least(0)),
        ConfigDef("group.max.size", _I, str(INT_MAX), "Most members a classic group may have.",
                  _at_least(1)),
        # The consumer group protocol (KIP-848).
        ConfigDef("group.consumer.session.timeout.ms", _I, "45000",
                  "How long a consumer protocol member may go without a heartbeat.",
                  _at_least(1)),
        ConfigDef("group.consumer.heartbeat.interval.ms", _I, "5000",
                  "How often consumer protocol members are told to heartbeat.", _at_least(1)),
        ConfigDef("group.consumer.max.size", _I, str(INT_MAX),
                  "Most members a consumer protocol group may have.", _at_least(1)),
        ConfigDef("group.consumer.migration.policy", _S, "bidirectional",
                  "Which way groups with members may move between the classic and the "
                  "consumer protocol (Kafka 4.0's default; 3.9's is disabled).",
                  _one_of("disabled", "upgrade", "downgrade", "bidirectional")),
        ConfigDef("offsets.topic.num.partitions", _I, "16",
                  "Partitions of __consumer_offsets, created on first use (Kafka's default is "
                  "50); fixed once the topic exists.", _at_least(1)),
        ConfigDef("offsets.topic.replication.factor", ConfigType.SHORT, "1",
                  "Replication factor of __consumer_offsets, capped at the live brokers.",
                  _at_least(1)),
        ConfigDef("offsets.topic.segment.bytes", _I, "104857600",
                  "Segment size of __consumer_offsets.", _at_least(14)),
        ConfigDef("offsets.load.buffer.size", _I, "5242880",
                  "Bytes read at a time when loading groups and offsets from __consumer_offsets.",
                  _at_least(1)),
        ConfigDef("offsets.retention.minutes", _I, "10080",
                  "Committed offsets of a group that has been empty this long are removed.",
                  _at_least(1)),
        ConfigDef("offsets.retention.check.interval.ms", _L, "600000",
                  "How often expired offsets are looked for.", _at_least(1)),
        ConfigDef("offsets.commit.timeout.ms", _I, "5000",
                  "How long an offset commit waits for its write to reach the in-sync replicas.",
                  _at_least(1)),
        ConfigDef("offset.metadata.max.bytes", _I, "4096",
                  "Longest metadata string an offset commit may carry.", _at_least(0)),
        # The transaction coordinator and its state topic (kcli.broker.txn).
        ConfigDef("transaction.state.log.num.partitions", _I, "50",
                  "Partitions of __transaction_state, created on first use; fixed once the "
                  "topic exists.", _at_least(1)),
        ConfigDef("transaction.state.log.replication.factor", ConfigType.SHORT, "1",
                  "Replication factor of __transaction_state, capped at the live brokers "
                  "(Kafka's default is 3; a local cluster sets it to its size).", _at_least(1)),
        ConfigDef("transaction.state.log.segment.bytes", _I, "104857600",
                  "Segment size of __transaction_state.", _at_least(14)),
        ConfigDef("transaction.max.timeout.ms", _I, "900000",
                  "Longest transaction.timeout.ms a producer may ask for.", _at_least(1)),
        ConfigDef("transactional.id.expiration.ms", _I, "604800000",
                  "A transactional id idle this long (no transaction open) is forgotten.",
                  _at_least(1)),
        ConfigDef("transaction.abort.timed.out.transaction.cleanup.interval.ms", _I, "10000",
                  "How often transactions open past their timeout are looked for and aborted.",
                  _at_least(1)),
        ConfigDef("transaction.remove.expired.transaction.cleanup.interval.ms", _I, "3600000",
                  "How often expired transactional ids are looked for.", _at_least(1)),
        ConfigDef("transaction.partition.verification.enable", _B, "true",
                  "Before a producer's first transactional write to a partition, ask its "
                  "coordinator whether the partition is in the transaction (KIP-890)."),
    )
}

# topic config -> (type, broker synonym, doc, check)
_TOPIC: tuple[tuple[str, ConfigType, str, str, Callable[[str], None] | None], ...] = (
    ("cleanup.policy", ConfigType.LIST, "log.cleanup.policy",
     "delete, compact, or both.", _cleanup_policy),
    ("compression.type", _S, "compression.type",
     "Codec the broker stores batches in (producer keeps the producer's).",
     _one_of("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd")),
    ("delete.retention.ms", _L, "log.cleaner.delete.retention.ms",
     "How long tombstones are kept on compacted topics.", _at_least(0)),
    ("file.delete.delay.ms", _L, "log.segment.delete.delay.ms",
     "Delay before deleting a segment file.", _at_least(0)),
    ("flush.messages", _L, "log.flush.interval.messages",
     "fsync after this many records.", _at_least(1)),
    ("flush.ms", _L, "log.flush.interval.ms", "fsync at least this often.", _at_least(0)),
    ("index.interval.bytes", _I, "log.index.interval.bytes",
     "Bytes between offset index entries.", _at_least(0)),
    ("max.compaction.lag.ms", _L, "log.cleaner.max.compaction.lag.ms",
     "Maximum time a record stays uncompacted.", _at_least(1)),
    ("max.message.bytes", _I, "message.max.bytes", "Largest record batch accepted.",
     _at_least(0)),
    ("message.downconversion.enable", _B, "log.message.downconversion.enable",
     "Down-convert for a Fetch below v4 (false: UNSUPPORTED_VERSION).", None),
    ("message.timestamp.type", _S, "log.message.timestamp.type",
     "CreateTime or LogAppendTime.", _one_of("CreateTime", "LogAppendTime")),
    ("message.timestamp.before.max.ms", _L, "log.message.timestamp.before.max.ms",
     "How far in the past a record timestamp may be.", _at_least(0)),
    ("message.timestamp.after.max.ms", _L, "log.message.timestamp.after.max.ms",
     "How far in the future a record timestamp may be.", _at_least(0)),
    ("min.cleanable.dirty.ratio", _D, "log.cleaner.min.cleanable.ratio",
     "Dirty ratio that makes the log eligible for compaction.", _ratio),
    ("min.compaction.lag.ms", _L, "log.cleaner.min.compaction.lag.ms",
     "Minimum age of a record before it can be compacted.", _at_least(0)),
    ("min.insync.replicas", _I, "min.insync.replicas",
     "In-sync replicas required for acks=all writes.", _at_least(1)),
    ("preallocate", _B, "log.preallocate", "Preallocate segment files (ignored).", None),
    ("retention.bytes", _L, "log.retention.bytes", "Size retention per partition (-1: none).",
     None),
    ("retention.ms", _L, "log.retention.ms", "Time retention (-1: none).", None),
    ("segment.bytes", _I, "log.segment.bytes", "Segment size.", _at_least(14)),
    ("segment.index.bytes", _I, "log.index.size.max.bytes", "Largest index file.", _at_least(4)),
    ("segment.jitter.ms", _L, "log.roll.jitter.ms", "Random jitter of segment rolls.",
     _at_least(0)),
    ("segment.ms", _L, "log.roll.ms", "Segment age before a roll.", _at_least(1)),
    ("unclean.leader.election.enable", _B, "unclean.leader.election.enable",
     "Allow an out-of-sync replica to become leader.", None),
)

TOPIC_CONFIGS: dict[str, ConfigDef] = {
    name: ConfigDef(name, kind, BROKER_SETTINGS[synonym].default, doc, check)
    for name, kind, synonym, doc, check in _TOPIC
}
TOPIC_SYNONYMS: dict[str, str] = {name: synonym for name, _k, synonym, _d, _c in _TOPIC}


def validate_topic_configs(configs: Mapping[str, str | None]) -> dict[str, str]:
    """Validate topic overrides; returns them normalised, or raises InvalidConfig."""
    result: dict[str, str] = {}
    for name, value in configs.items():
        definition = TOPIC_CONFIGS.get(name)
        if definition is None:
            raise InvalidConfig(f"unknown topic config {name!r}")
        try:
            normalised = definition.validate(value)
        except InvalidConfig as error:
            raise InvalidConfig(f"invalid {name}: {error}") from None
        if normalised is not None:
            result[name] = normalised
    return result


_PER_LISTENER = re.compile(r"listener\.name\.([a-z0-9_]+)\.(.+)")
_MECHANISM_PREFIX = re.compile(r"(plain|scram-sha-256|scram-sha-512)\.(sasl\.jaas\.config)")


def base_setting(name: str) -> str | None:
    """The setting a listener- (and mechanism-) prefixed name overrides, e.g.
    listener.name.sasl_ssl.plain.sasl.jaas.config -> sasl.jaas.config; None when
    ``name`` has no such prefix or the setting may not be given per listener."""
    match = _PER_LISTENER.fullmatch(name)
    if match is None:
        return None
    rest = match.group(2)
    mechanism = _MECHANISM_PREFIX.fullmatch(rest)
    base = mechanism.group(2) if mechanism else rest
    if base.startswith(("ssl.", "sasl.")) or base == "connections.max.reauth.ms":
        return base if base in BROKER_SETTINGS else None
    return None


def validate_broker_settings(settings: Mapping[str, str]) -> dict[str, str]:
    """Validate broker settings given at start; raises InvalidConfig."""
    result: dict[str, str] = {}
    for name, value in settings.items():
        base = base_setting(name)
        definition = BROKER_SETTINGS.get(base or name)
        if definition is None:
            raise InvalidConfig(f"unknown broker setting {name!r}")
        normalised = definition.validate(value)
        if normalised is not None:
            result[name] = normalised
    return result


@dataclass(frozen=True, slots=True)
class ResolvedConfig:
    """A config's effective value and where it came from."""

    name: str
    value: str | None
    source: ConfigSource
    definition: ConfigDef
    synonyms: tuple[tuple[str, str | None, ConfigSource], ...]


class Settings:
    """Broker settings as given at start, over the built-in defaults."""

    def __init__(self, overrides: Mapping[str, str] | None = None) -> None:
        self.overrides = validate_broker_settings(overrides or {})

    def get(self, name: str) -> str:
        """The effective value of a broker setting."""
        value = self.overrides.get(name, BROKER_SETTINGS[name].default)
        assert value is not None
        return value

    def optional(self, name: str) -> str | None:
        """A broker setting that may be unset (None)."""
        return self.overrides.get(name, BROKER_SETTINGS[name].default)

    def for_listener(self, listener: str, name: str, mechanism: str | None = None) -> str | None:
        """A setting as one listener sees it: listener.name.<listener>.[<mechanism>.]<name>,
        else the plain setting."""
        prefix = f"listener.name.{listener.lower()}."
        if mechanism is not None:
            value = self.overrides.get(f"{prefix}{mechanism.lower()}.{name}")
            if value is not None:
                return value
        return self.overrides.get(prefix + name, self.optional(name))

    def get_int(self, name: str) -> int:
        """A numeric broker setting."""
        return int(self.get(name))

    def get_bool(self, name: str) -> bool:
        """A boolean broker setting."""
        return self.get(name) == "true"

    def resolve(self, name: str) -> ResolvedConfig:
        """A broker setting with its source."""
        definition = BROKER_SETTINGS[name]
        synonyms: tuple[tuple[str, str | None, ConfigSource], ...]
        if name in self.overrides:
            source = ConfigSource.STATIC_BROKER_CONFIG
            synonyms = ((name, self.overrides[name], source),
                        (name, definition.default, ConfigSource.DEFAULT_CONFIG))
        else:
            source = ConfigSource.DEFAULT_CONFIG
            synonyms = ((name, definition.default, source),)
        return ResolvedConfig(name, self.optional(name), source, definition, synonyms)

    def topic_value(self, topic_configs: Mapping[str, str], name: str) -> str:
        """A topic config's effective value: override, else the broker setting."""
        if name in topic_configs:
            return topic_configs[name]
        return self.get(TOPIC_SYNONYMS[name])

    def resolve_topic(self, topic_configs: Mapping[str, str], name: str) -> ResolvedConfig:
        """A topic config with its source and synonym chain (most specific first)."""
        definition = TOPIC_CONFIGS[name]
        broker = self.resolve(TOPIC_SYNONYMS[name])
        synonyms = broker.synonyms
        value: str | None
        if name in topic_configs:
            value = topic_configs[name]
            source = ConfigSource.DYNAMIC_TOPIC_CONFIG
            synonyms = ((name, value, source), *synonyms)
        else:
            value, source = broker.value, broker.source
        return ResolvedConfig(name, value, source, definition, synonyms)
