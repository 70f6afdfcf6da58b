"""The command-line surface every PANORAMIA audit shares (audit-image, audit-tabular, audit-text):
the config file and overrides, the data, the target (trained here or the user's model), DP."""

from __future__ import annotations

from privaudit.core.config import add_config_arguments
from privaudit.core.errors import CliParser

# the fields these flags set, for privaudit.core.config.load_config(flags=...)
SHARED_FIELDS = (
    "data",
    "target",
    "epsilon",
    "reproducible_noise",
    "model",
    "non_members_data",
    "epochs",
    "seed",
    "out_dir",
)


def check_mia_reference(config) -> None:
    """The cross-field check of a PANORAMIA config's `mia_reference` (image and tabular)."""
    config.require(
        config.mia_reference == "none" or config.helper_data == "generator-split",
        "mia_reference",
        "'helper' needs helper_data 'generator-split' (a helper trained on synthetic data fits "
        "real examples worse than any model trained on real data does, so the MIA would read "
        "the target's fit to real data as membership)",
    )


def panoramia_parser(
    prog: str,
    what: str,
    *,
    default: str,
    targets,
    data: str,
    model: str,
    non_members: str,
    example: str,
) -> CliParser:
    """A parser with the shared flags; `what` names the model kind, `default` the no-argument run."""
    parser = CliParser(
        prog=prog,
        description=f"PANORAMIA privacy audit of {what}: generated non-members, baseline and membership-"
        f"inference classifiers, eps_tilde = {{c+eps}}_lb - c_lb (a difference of two bounds, not itself a "
        f"bound). With no arguments it audits {default}.",
    )
    add_config_arguments(parser, example)
    parser.add_argument("--data", help=data)
    parser.add_argument(
        "--target", choices=targets, help="how to train the target when no --model is given"
    )
    parser.add_argument(
        "--epsilon", type=float, help="train the target with DP-SGD at this epsilon"
    )
    parser.add_argument(
        "--reproducible-noise",
        action="store_const",
        const=True,
        default=None,
        help="DP noise and sampling from --seed: reproducible, NOT private (tests only)",
    )
    parser.add_argument("--model", help=model)
    parser.add_argument("--non-members", dest="non_members_data", help=non_members)
    parser.add_argument("--epochs", type=int, help="target training epochs")
    parser.add_argument(
        "--seed", type=int, help="seeds the splits, models and generator (never the DP noise)"
    )
    parser.add_argument("--out", dest="out_dir", help="run directory (reused to resume)")
    return parser


def out_given(args) -> bool:
    """Whether the user named the run directory (--out, --set out_dir=..., or out_dir in --config);
    when not, a CLI derives it from the resolved config, one per data and target, so runs of
    different targets never overwrite each other's report."""
    from privaudit.core.config import read_yaml_mapping

    if args.out_dir is not None or any(
        o.partition("=")[0].strip() == "out_dir" for o in args.overrides
    ):
        return True
    return bool(args.config) and "out_dir" in read_yaml_mapping(args.config)
