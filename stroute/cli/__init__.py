"""The `stroute` command line: a thin layer over the driver core."""
