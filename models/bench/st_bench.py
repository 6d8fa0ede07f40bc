#!/usr/bin/env python3
"""sentence-transformers (PyTorch, CPU) on the texts of `rapport bench embed`,
for a side-by-side comparison with the Candle embedder.

    python3 -m venv /tmp/st && /tmp/st/bin/pip install sentence-transformers
    rapport bench embed --dump-texts /tmp/texts.json
    /tmp/st/bin/python models/bench/st_bench.py /tmp/texts.json \
        ~/.cache/rapport/models/all-minilm-l6-v2

The model directory is the one `rapport models fetch all-minilm-l6-v2` fills
(config.json, tokenizer.json, model.safetensors); the pooling and
normalisation modules are added here as in the published model. Prints one
JSON document shaped like `rapport bench embed`'s.
"""

import json
import sys
import time

import torch
from sentence_transformers import SentenceTransformer, models


def main() -> None:
    texts_path, model_dir = sys.argv[1], sys.argv[2]
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    batch_sizes = [int(b) for b in (sys.argv[4] if len(sys.argv) > 4 else "1,8,32").split(",")]
    repeats = 2
    torch.set_num_threads(threads)
    texts = json.load(open(texts_path, encoding="utf-8"))

    word = models.Transformer(model_dir, max_seq_length=256)
    pooling = models.Pooling(word.get_word_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[word, pooling, models.Normalize()], device="cpu")
    # Tokens per text as the model sees them ([CLS] and [SEP] included, truncated at 256).
    tokens = int(sum(model.tokenize([t])["attention_mask"].sum() for t in texts))

    results = []
    for batch_size in batch_sizes:
        model.encode(texts[: batch_size * 2], batch_size=batch_size)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            model.encode(texts, batch_size=batch_size, convert_to_numpy=True)
            best = min(best, time.perf_counter() - start)
        results.append(
            {
                "batch_size": batch_size,
                "seconds": best,
                "sentences_per_s": len(texts) / best,
                "tokens_per_s": tokens / best,
            }
        )
    print(
        json.dumps(
            {
                "model": "all-minilm-l6-v2",
                "engine": f"sentence-transformers (PyTorch {torch.__version__}, cpu)",
                "threads": threads,
                "sentences": len(texts),
                "tokens": tokens,
                "sorted_by_length": True,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
