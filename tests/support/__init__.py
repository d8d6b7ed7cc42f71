"""Test support: real broker processes and helpers shared by every test module."""
