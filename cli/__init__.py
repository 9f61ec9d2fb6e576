"""The `wa-support` command line."""
