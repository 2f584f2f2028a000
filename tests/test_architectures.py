"""The architecture plugins' defaults: only keys that something reads."""

from __future__ import annotations

from er_art.architectures import get_architecture
from er_art.registry import names

# what reads Architecture.defaults: build_classifier (lr, lr_ratios, clip_value, the lambdas) and
# resolve_config (lr, epochs, threads, the lambdas); the batch size is the dataset's
READ = {"lr", "lr_ratios", "clip_value", "lambda_d", "lambda_ce", "lambda_reg", "epochs", "threads"}


def test_architecture_defaults_hold_only_keys_that_are_read():
    for name in names("architectures"):
        unread = set(get_architecture(name).defaults) - READ
        assert not unread, f"{name}: {sorted(unread)} in defaults is never read"
