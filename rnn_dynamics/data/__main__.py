"""python -m rnn_dynamics.data fetch mnist|ptb [--root DIR] [--mirror URL]: download and verify."""

from __future__ import annotations

import sys

from ..commandline import OneLineParser, fail
from . import DataError, data_root
from .fetch import SOURCES, fetch


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m rnn_dynamics.data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    fetching = commands.add_parser("fetch", help="download a dataset and verify its sha256")
    fetching.add_argument("dataset", choices=sorted(SOURCES))
    fetching.add_argument("--root", default=None, help="data root (default: $RNN_DYNAMICS_DATA, else "
                                                       "~/.cache/rnn-dynamics)")
    fetching.add_argument("--mirror", default=None, metavar="URL", help="a base URL serving the same files")
    args = parser.parse_args(argv)
    try:
        for path in fetch(args.dataset, data_root(args.root), args.mirror):
            print(f"verified {path}")
    except DataError as err:
        fail(str(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
