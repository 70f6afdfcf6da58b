"""Per-layer per-sample gradient rules; importing this package registers the built-in ones."""

# each module registers its rule with @register_rule on import
from privaudit.dp.layers import (  # noqa: F401
    attention,
    conv,
    embedding,
    gpt2_conv1d,
    group_norm,
    instance_norm,
    layer_norm,
    linear,
    rms_norm,
    timm_layers,
)
from privaudit.dp.layers.fallback import FALLBACK_RULE
from privaudit.dp.layers.registry import LayerCall, LayerRule, register_rule, rule_for

__all__ = ["FALLBACK_RULE", "LayerCall", "LayerRule", "register_rule", "rule_for"]
