"""Studies run as ``python -m analyses.<name>``; each writes a labelled netCDF dataset."""
