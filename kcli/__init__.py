"""kcli: one command line and terminal dashboard for Apache Kafka."""

__version__ = "0.1.0"
