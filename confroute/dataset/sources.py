"""Sources of `data.source` that are not tables, read by a layer above this one.

The dataset layer reads bundled names, files and Hugging Face datasets (`tables.read_table`).
Another kind of source (the decision log of `confroute serve` behind a database URL) belongs to
a higher layer, which registers a reader here when it is imported; `schema.load` asks `reader`
first, so this layer never imports the one that knows the source.

A reader takes the DataConfig and `schema.load` (to label the table it makes by the same rules
as any table) and returns the LabelledPrompts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Reader = Callable[[Any, Callable[[Any], Any]], Any]
"""(DataConfig, schema.load) -> LabelledPrompts."""

_READERS: dict[str, tuple[Callable[[str], bool], Reader]] = {}


def register(name: str, claims: Callable[[str], bool], reader: Reader) -> None:
    """Read every source for which `claims(source)` is true with `reader`; `name` (e.g.
    "database URL") keys the entry, so registering a name again replaces it."""
    _READERS[name] = (claims, reader)


def reader(source: str) -> Reader | None:
    """The registered reader that claims `source`, or None: a table `tables.read_table` reads."""
    return next((read for claims, read in _READERS.values() if claims(source)), None)
