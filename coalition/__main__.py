"""``python -m coalition`` runs the ``coalition`` command, for a shell where the
virtualenv's scripts are not on the PATH."""

from coalition.cli import main

if __name__ == "__main__":
    main(prog_name="coalition")
