"""Ingest: documents in (files, web pages, feeds), cut into chunks, written to the store."""
