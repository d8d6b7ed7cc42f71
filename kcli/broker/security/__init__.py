"""Listeners, TLS and SASL: who a connection is, before any handler sees a request.

- ``listeners``: Kafka's listeners / advertised.listeners / security protocol map.
- ``tls``: the server's SSL context and the principal of a client certificate.
- ``plain`` and ``scram``: the SASL mechanisms, sans-IO; ``jaas``: their settings.
- ``session``: one connection's authentication state (KIP-43, KIP-152, KIP-368).
"""
