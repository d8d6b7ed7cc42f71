"""Talking to a Kafka cluster, through confluent-kafka's public API only.

Free of typer and rich: commands, the dashboard and the backup tools share it. Functions
take a :class:`~kcli.client.cluster.Cluster` and return plain dataclasses from
:mod:`kcli.client.models`; failures are :class:`~kcli.errors.KcliError` subclasses.

The commands and the dashboard reach Kafka only through this package. :mod:`kcli.backup`
is the one other package that imports confluent-kafka: its copy loops drive their own
consumers and idempotent producers (assign, pause, seek, batches of messages, delivery
callbacks) and make a few admin calls of their own, while taking the
:class:`~kcli.client.cluster.Cluster`, the ``ErrorWatch``, the transient-error set, the
client defaults, offsets, topics and groups from here.
"""
