"""Sweeps: many members (seeds × varied values) of one spec trained side by side."""
