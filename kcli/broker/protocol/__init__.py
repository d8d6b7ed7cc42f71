"""Sans-IO Kafka protocol: framing and the request/response codec. No sockets here."""
