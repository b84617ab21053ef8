"""The ``xdistill`` command line: one verb per library function."""
