"""Everything that talks to a Kafka cluster, through confluent-kafka's public API only.

Free of typer and rich: commands, the dashboard and the backup tools share it. Functions
take a :class:`~kcli.client.cluster.Cluster` and return plain dataclasses from
:mod:`kcli.client.models`; failures are :class:`~kcli.errors.KcliError` subclasses.
"""
