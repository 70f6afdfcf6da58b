"""privaudit.text: language models to audit or train with DP (the gpt2 task of dp-train)."""
