"""Ingest: Segment messages, CSV and JSONL imports, identity stitching, attribute names."""
