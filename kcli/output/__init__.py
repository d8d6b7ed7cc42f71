"""Pure renderers: data in, text out. A command builds a :class:`Result` and hands it
to the format the user chose (``-o table|json|jsonl``); renderers never talk to Kafka.

Importing this package is cheap: rich is imported only when a table is rendered.
"""

from kcli.output.model import Column, Result, Table
from kcli.output.registry import FORMATS, OutputFormat, get_format

__all__ = ["FORMATS", "Column", "OutputFormat", "Result", "Table", "get_format"]
