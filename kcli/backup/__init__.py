"""Backup, restore and migrate: the archive format and the engines behind the commands.

No typer or rich here (the commands in :mod:`kcli.cli` drive these modules). Besides
:mod:`kcli.client`, whose cluster, offsets, topics and groups it uses, this is the one
package that imports confluent-kafka itself (lazily, inside the functions that stream
records or make an admin call the client layer does not offer):

- :mod:`~kcli.backup.records`: the Avro record schema, the fast block encoder and
  segment (container) files; :mod:`~kcli.backup.reading` reads them back;
- :mod:`~kcli.backup.manifest`: the manifest (the archive's commit marker), checkpoints
  and atomic file writes;
- :mod:`~kcli.backup.archive`: opening, listing and verifying an archive;
- :mod:`~kcli.backup.backup`: a consistent, resumable, incremental backup run, whose
  records :mod:`~kcli.backup.segments` copies into segment files;
- :mod:`~kcli.backup.offsetmap`: the exact source->target offset map and the rules that
  translate committed offsets through it;
- :mod:`~kcli.backup.copier`, :mod:`~kcli.backup.jobs` and
  :mod:`~kcli.backup.checkpoints`: writing records to a target cluster with an offset
  map and a checkpoint kept in that cluster, shared by
  :mod:`~kcli.backup.restore` and :mod:`~kcli.backup.migrate`;
- :mod:`~kcli.backup.partitioner`: Kafka's murmur2 key partitioner (``--repartition``).
"""
