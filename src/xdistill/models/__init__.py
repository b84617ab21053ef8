"""Networks and tokenizers that several stages share: xdistill's own causal language model
(:mod:`.gpt`), read as a teacher (``kind: gpt``) and trained as a student (``gpt``), and the
byte-level BPE tokenizers both use (:mod:`.tokenizer`)."""
