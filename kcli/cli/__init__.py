"""The typer command line: the root app and one module per command group."""
