"""Notebook -> pipeline: parsing, versions, data between steps and execution."""
