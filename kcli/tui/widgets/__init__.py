"""Widgets that only render what they are given."""
