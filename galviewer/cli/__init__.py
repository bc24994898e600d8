"""``galviewer`` command line: open the viewer, or restore headlessly.

Pixel coordinates on the command line are 0-based (x = column, y = row), the
convention of numpy, astropy and photutils; pass ``--origin 1`` to give them
as DS9/IRAF 1-based image coordinates.  Region files (DS9) are converted by
``regions``, which handles their 1-based convention itself.
"""


from __future__ import annotations

import sys
from collections.abc import Sequence

from galviewer._atomic import safe_label
from galviewer.cli._common import _astropy_log_to_stderr, to_json
from galviewer.cli.parser import build_parser
from galviewer.errors import GalviewerError

__all__ = ["build_parser", "main", "safe_label", "to_json"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``galviewer`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    commands = {"view", "restore", "measure", "detect", "info", "models", "survey"}
    if not argv or (argv[0] not in commands and not argv[0].startswith("-")):
        argv = ["view", *argv]
    args = parser.parse_args(argv)
    from galviewer.cli.commands import cmd_detect, cmd_info, cmd_measure, cmd_models, cmd_view
    from galviewer.cli.restore import cmd_restore
    from galviewer.cli.survey import cmd_survey

    handlers = {"view": cmd_view, "restore": cmd_restore, "measure": cmd_measure, "detect": cmd_detect,
                "info": cmd_info, "models": cmd_models, "survey": cmd_survey}
    try:
        if args.command == "view":
            return handlers[args.command](args)
        with _astropy_log_to_stderr():
            return handlers[args.command](args)
    except GalviewerError as exc:
        print(f"galviewer: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("galviewer: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
