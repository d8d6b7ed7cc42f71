"""The embedded Schema Registry: Confluent's REST API, with its state in ``_schemas``.

- :mod:`.errors`: Confluent's error codes;
- :mod:`.schemas`: parsing, canonical forms and compatibility per schema type;
- :mod:`.state`: the registry's state, rebuilt from the ``_schemas`` records;
- :mod:`.service`: what each API call reads or writes (no I/O);
- :mod:`.store`: the ``_schemas`` topic, through confluent-kafka;
- :mod:`.http`: the aiohttp routes, and the server's entry point.
"""
