"""Figure scripts: ``python -m figures.<name>`` turns a study dataset into PNG and PDF figures.

Figures read datasets only, never models, so any figure can be redrawn from a file.
"""
