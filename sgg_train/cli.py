"""`sgg-train`: one run (`sgg_train.train`), or many (`sgg-train sweep ...`, `sgg_train.sweep`)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

NEEDS = ("torch", "transformers")  # what the `train` extra installs beyond the dashboard


def missing_packages() -> list[str]:
    """The packages sgg-train needs that this environment lacks (the console script is installed
    with the base package, the training stack only with `pip install 'sgg-toolkit[train]'`)."""
    return [name for name in NEEDS if importlib.util.find_spec(name) is None]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    missing = missing_packages()
    if missing:
        print(
            f"sgg-train needs {' and '.join(missing)}, which this environment lacks: install "
            "the training extra, pip install 'sgg-toolkit[train]'.",
            file=sys.stderr,
        )
        return 2
    if args[:1] == ["sweep"]:
        from sgg_train.sweep import main as sweep_main

        return sweep_main(args[1:])
    from sgg_train.train import main as train_main

    return train_main(args)


if __name__ == "__main__":
    sys.exit(main())
