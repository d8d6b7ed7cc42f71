"""Cluster metadata, controller, replication and leader election."""
