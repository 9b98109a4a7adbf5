"""Build the adapters named by the settings. Entry points call this; logic never reads settings itself.

Each builder imports its adapter lazily, so the Lambda artifact (no torch, no
tantivy) never imports the local engine, and the local platform never needs
cloud clients it does not use.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from service.contract import EmbedderName, GeneratorName, SearchBackendName
from service.embed.protocol import Embedder
from service.generate.protocol import AnswerGenerator
from service.ingest.chunking import Chunker
from service.ingest.indexer import Indexer
from service.ingest.ledger import Ledger
from service.ingest.objects import ObjectStore, S3ObjectStore
from service.ingest.service import IngestService
from service.query.service import QueryService
from service.search.admin import IndexAdmin
from service.search.protocol import SearchBackend
from service.search.retriever import Retriever
from service.settings import Settings


def aws_client(settings: Settings, service: str) -> Any:
    import boto3

    # Typed as Any: boto3-stubs overloads on a literal service name, and ours is a variable.
    make_client: Any = boto3.client
    return make_client(service, region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url)


def build_embedder(settings: Settings) -> Embedder:
    if settings.embedder is EmbedderName.LOCAL:
        from service.embed.local import LocalMiniLMEmbedder

        return LocalMiniLMEmbedder(batch_size=settings.embedding_batch_size)
    if settings.embedder is EmbedderName.OPENAI:
        from service.embed.openai_compat import OpenAICompatibleEmbedder

        assert settings.openai_base_url is not None  # enforced by Settings
        return OpenAICompatibleEmbedder(
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
            model=settings.embedding_model_id,
            dimension=settings.embedding_dimension,
            budget_seconds=settings.retry_budget_seconds,
        )
    from service.embed.bedrock import BedrockEmbedder

    return BedrockEmbedder(
        aws_client(settings, "bedrock-runtime"),
        model_id=settings.embedding_model_id,
        dimension=settings.embedding_dimension,
        concurrency=settings.embedding_concurrency,
        budget_seconds=settings.retry_budget_seconds,
    )


def build_backend(settings: Settings, dimension: int) -> SearchBackend:
    if settings.search_backend is SearchBackendName.LOCAL:
        from service.search.admin import AliasFollowingBackend
        from service.search.local_catalog import LocalCatalog

        # Issue 3: follows the read alias, so `ragctl reindex` switches running processes too.
        return AliasFollowingBackend(
            LocalCatalog(settings.data_dir), settings.index_alias, dimension, settings.local_ann
        )
    if settings.search_backend is SearchBackendName.OPENSEARCH:
        from service.search.opensearch import OpenSearchBackend

        return OpenSearchBackend.from_settings(settings, dimension)
    from service.search.elastic import ElasticsearchBackend

    return ElasticsearchBackend.from_settings(settings, dimension)


def build_index_admin(settings: Settings, dimension: int) -> IndexAdmin:
    """Versioned indexes behind the read alias, for `ragctl reindex` on whichever backend is configured."""
    if settings.search_backend is SearchBackendName.LOCAL:
        from service.search.admin import LocalIndexAdmin

        return LocalIndexAdmin(settings.data_dir, settings.index_alias, dimension, settings.local_ann)
    if settings.search_backend is SearchBackendName.OPENSEARCH:
        from service.search.opensearch import OpenSearchIndexAdmin

        return OpenSearchIndexAdmin.from_settings(settings, dimension)
    from service.search.elastic import ElasticsearchIndexAdmin

    return ElasticsearchIndexAdmin.from_settings(settings, dimension)


def build_generator(settings: Settings) -> AnswerGenerator:
    if settings.generator is GeneratorName.EXTRACTIVE:
        from service.generate.extractive import ExtractiveGenerator

        return ExtractiveGenerator()
    if settings.generator is GeneratorName.BEDROCK:
        from service.generate.bedrock import BedrockGenerator

        assert settings.generator_model_id is not None  # enforced by Settings
        return BedrockGenerator(aws_client(settings, "bedrock-runtime"), model_id=settings.generator_model_id)
    from service.generate.openai_compat import OpenAICompatibleGenerator

    assert settings.openai_base_url is not None  # enforced by Settings
    return OpenAICompatibleGenerator(
        base_url=settings.openai_base_url,
        api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
        model=settings.generator_model_id or "default",
    )


def resolve_secrets(settings: Settings) -> Settings:
    """`settings` with the values of the Secrets Manager secrets it references (service/secrets.py)."""
    from service import secrets

    if not secrets.wanted(settings):
        return settings
    client = aws_client(settings, "secretsmanager")
    return secrets.with_secrets(
        settings, lambda secret_id: str(client.get_secret_value(SecretId=secret_id)["SecretString"])
    )


def build_ledger(settings: Settings) -> Ledger:
    if settings.ledger_table:
        from service.ingest.ledger_dynamodb import DynamoDbLedger

        return DynamoDbLedger(aws_client(settings, "dynamodb"), settings.ledger_table)
    from service.ingest.ledger import SqliteLedger, local_ledger_path

    return SqliteLedger(local_ledger_path(settings.data_dir))


class Container:
    """Lazily built, process-wide adapters; tests pass their own pieces instead."""

    def __init__(self, settings: Settings, **overrides: Any) -> None:
        # Issue 13: credentials of endpoints outside AWS are read here, once, at cold start.
        self.settings = resolve_secrets(settings)
        for name, value in overrides.items():
            self.__dict__[name] = value

    @cached_property
    def embedder(self) -> Embedder:
        return build_embedder(self.settings)

    @cached_property
    def backend(self) -> SearchBackend:
        backend = build_backend(self.settings, self.embedder.dimension)
        # In a stack the provisioning function created the index during `pulumi up`
        # (service.search.provision) and the API's role may only search: no process creates
        # or inspects it. Without a provisioner (local platform, a cluster of your own)
        # the process creates it, idempotently, and checks its vector size.
        if not self.settings.search_provisioned:
            backend.ensure_index()
        return backend

    @cached_property
    def generator(self) -> AnswerGenerator:
        return build_generator(self.settings)

    @cached_property
    def ledger(self) -> Ledger:
        return build_ledger(self.settings)

    @cached_property
    def objects(self) -> ObjectStore:
        return S3ObjectStore(aws_client(self.settings, "s3"))

    @cached_property
    def retriever(self) -> Retriever:
        retriever = Retriever(
            self.backend,
            self.embedder,
            default_mode=self.settings.search_mode,
            alpha=self.settings.hybrid_alpha,
            candidates=self.settings.hybrid_candidates,
        )
        if self.settings.rerank_model_arn is None:
            return retriever
        from service.query.rerank import BedrockReranker, RerankingRetriever

        client = aws_client(self.settings, "bedrock-agent-runtime")
        return RerankingRetriever(
            retriever,
            BedrockReranker(client, self.settings.rerank_model_arn),
            depth=self.settings.rerank_depth,
        )

    @cached_property
    def query_service(self) -> QueryService:
        return QueryService(self.retriever, self.generator)

    @cached_property
    def indexer(self) -> Indexer:
        chunker = Chunker(self.settings.chunk_size, self.settings.chunk_overlap)
        # Issue 3: embedding batched and rate-limited to the configured concurrency.
        return Indexer(
            self.backend,
            self.embedder,
            chunker,
            batch_size=self.settings.embedding_batch_size,
            concurrency=self.settings.embedding_concurrency,
        )

    @cached_property
    def ingest_service(self) -> IngestService:
        # Issue 3: permanent failures go straight to the DLQ; large documents continue on the ingest queue.
        from service.ingest.queue import SqsSink
        from service.ingest.service import IngestLimits

        settings = self.settings
        dlq, queue = settings.dead_letter_queue_url, settings.ingest_queue_url
        sqs = aws_client(settings, "sqs") if dlq or queue else None
        return IngestService(
            self.indexer,
            self.objects,
            self.ledger,
            settings.max_document_bytes,
            dead_letters=SqsSink(sqs, dlq) if dlq else None,
            requeue=SqsSink(sqs, queue) if queue else None,
            # Events for any other bucket are refused rather than mapped onto this bucket's ids.
            bucket=settings.document_bucket or None,
            limits=IngestLimits(
                max_chunks_per_message=settings.max_chunks_per_message,
                retry_budget_seconds=settings.retry_budget_seconds,
            ),
        )
