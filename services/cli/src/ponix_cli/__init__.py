"""The ponix command line."""
