"""The dashboard's screens: main (cluster, topics, groups), topic, group, dialogs."""
