"""`sgg-train`: one run (`sgg_train.train`), or many (`sgg-train sweep ...`, `sgg_train.sweep`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["sweep"]:
        from sgg_train.sweep import main as sweep_main

        return sweep_main(args[1:])
    from sgg_train.train import main as train_main

    return train_main(args)


if __name__ == "__main__":
    sys.exit(main())
