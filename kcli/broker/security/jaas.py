"""The one line of JAAS configuration Kafka's SASL settings take:
``org.apache.kafka.common.security.plain.PlainLoginModule required username="admin"
password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";``"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kcli.broker.configs import InvalidConfig

_HEAD = re.compile(r"\s*([\w.$]+)\s+(required|requisite|sufficient|optional)\s*")
_OPTION = re.compile(r'\s*([\w.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s";]+))\s*')


@dataclass(frozen=True)
class JaasConfig:
    """A login module and its options."""

    module: str
    options: dict[str, str]

    @property
    def plain_users(self) -> dict[str, str]:
        """PLAIN's users: every ``user_NAME="password"`` option."""
        return {key[5:]: value for key, value in self.options.items()
                if key.startswith("user_") and len(key) > 5}

    @property
    def login(self) -> tuple[str, str] | None:
        """The broker's own username and password, for inter-broker logins."""
        user, password = self.options.get("username"), self.options.get("password")
        return (user, password) if user is not None and password is not None else None


def parse_jaas(text: str, setting: str = "sasl.jaas.config") -> JaasConfig:
    """Parse one login module line; InvalidConfig says where it is wrong (never the
    values: they hold passwords)."""
    head = _HEAD.match(text)
    if head is None:
        raise InvalidConfig(f"{setting}: expected 'LoginModule required key=\"value\" ...;'")
    options: dict[str, str] = {}
    position = head.end()
    while position < len(text):
        if text[position:].strip() == ";":
            return JaasConfig(head.group(1), options)
        match = _OPTION.match(text, position)
        if match is None:
            raise InvalidConfig(f"{setting}: cannot read the options after "
                                f"{list(options)[-1] if options else head.group(1)!r}")
        quoted = match.group(2)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else match.group(3)
        options[match.group(1)] = value
        position = match.end()
    raise InvalidConfig(f"{setting}: the login module line must end with ';'")
