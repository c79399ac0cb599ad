"""``python3 -m distrodebug.toolbox.rootfs NAME OUT.tar``: a catalog toolbox's root filesystem as a
tar file, with no engine involved (the build stage of sidecars/NAME/Dockerfile runs this)."""

from __future__ import annotations

import sys
from pathlib import Path

from distrodebug.errors import DistrodebugError
from distrodebug.toolbox import catalog


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python3 -m distrodebug.toolbox.rootfs NAME OUT.tar\n")
        return 2
    try:
        tools = catalog.write_tar(catalog.lookup(argv[0]), Path(argv[1]))
    except DistrodebugError as exc:
        sys.stderr.write(exc.paragraph() + "\n")
        return exc.exit_code
    sys.stderr.write(f"wrote {argv[1]}: {', '.join(tools)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
