"""Labelled tables: the canonical schema, format adapters, label rules and bundled datasets."""
