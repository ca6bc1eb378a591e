"""The `stroute` command line: a thin layer over the driver core."""


def main() -> None:
    """The `stroute` console script.

    A Ctrl-C while the command line is still loading (its imports take a
    good part of a short command's time) exits 130, as one during a command
    does, instead of printing Python's traceback.
    """
    try:
        from stroute.cli.app import main as run
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    run()
