"""Runtimes: one module per engine or cluster, each the only importer of its SDK."""
