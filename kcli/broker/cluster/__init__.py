"""Cluster metadata, controller, replication and leader election.

- ``metadata``: the cluster metadata document (``metadata.json``) and its store.
- ``coordination``: how brokers sharing a cluster directory coordinate (liveness locks,
  the controller lock, metadata transactions) and how that maps onto Kafka's controller.
- ``controller``: metadata changes as transactions; the controller's leader elections
  and a broker's controlled shutdown.
- ``fetcher``: the replica fetcher, one task per leader a broker follows.
- ``client``: the small asyncio Kafka client the fetcher speaks through.

The leader's side of replication (follower progress, high watermark, ISR changes) lives
in ``kcli.broker.partition`` and ``kcli.broker.broker``.
"""
