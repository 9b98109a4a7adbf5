"""Ingest side of workspaces and document permissions (issue 15): the workspace comes from the
key prefix, readers from object metadata or the inline document; bad ones are dead-lettered with
a reason; a permissions-only change re-indexes the permission fields without re-embedding."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from service.ingest.errors import PermanentIngestError, TransientIngestError
from service.ingest.ledger import Status
from service.ingest.objects import StoredObject
from service.ingest.queue import DOCUMENT_ATTRIBUTE, REASON_ATTRIBUTE
from tests.factories import make_document
from tests.unit.test_ingest_service import Rig, rig, s3_event, sentences, upsert_uri

__all__ = ["rig"]  # the fixture, shared with the ingest service tests


def put(
    rig: Rig,
    key: str,
    text: str,
    *,
    users: tuple[str, ...] = (),
    groups: tuple[str, ...] = (),
    etag: str = "e1",
) -> None:
    rig.objects.stored[key] = StoredObject(
        data=text.encode(), etag=etag, version_id=None, allowed_users=users, allowed_groups=groups
    )


def chunks_of(rig: Rig, document_id: str) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    return sorted(
        {
            (c.chunk.workspace, c.chunk.allowed_users, c.chunk.allowed_groups)
            for c in rig.backend.chunks.values()
            if c.chunk.document_id == document_id
        }
    )


def test_a_key_under_workspaces_belongs_to_that_workspace_and_the_same_name_elsewhere_is_another_document(
    rig: Rig,
) -> None:
    # Given the same file name in the default workspace and in two named ones
    for key in ("plan.md", "workspaces/acme/plan.md", "workspaces/globex/plan.md"):
        put(rig, key, sentences(4, key))
    # When their events are handled
    rig.service().handle_message(
        s3_event("plan.md", "workspaces/acme/plan.md", "workspaces/globex/plan.md"), remaining_ms=60_000
    )
    # Then three documents, each in its workspace in the ledger and on every chunk, no shared chunk id
    assert rig.record("plan.md").workspace == "default"
    assert rig.record("workspaces/acme/plan.md").workspace == "acme"
    assert chunks_of(rig, "workspaces/globex/plan.md") == [("globex", (), ())]
    ids = [set(rig.record(k).chunk_ids) for k in ("plan.md", "workspaces/acme/plan.md")]
    assert ids[0]
    assert ids[1]
    assert not ids[0] & ids[1]
    assert rig.ledger.workspace_counts() == {
        "default": {"indexed": 1},
        "acme": {"indexed": 1},
        "globex": {"indexed": 1},
    }


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("workspaces/Bad_Id/a.md", "workspace id 'Bad_Id' is malformed"),
        ("workspaces/acme", "no document name after workspaces/acme/"),
    ],
)
def test_a_malformed_workspace_key_is_dead_lettered_with_the_reason_and_records_nothing(
    rig: Rig, key: str, reason: str
) -> None:
    put(rig, key, sentences(3))
    rig.service().handle_message(upsert_uri(key), remaining_ms=60_000)
    [(_, attributes)] = rig.dlq.messages
    assert reason in attributes[REASON_ATTRIBUTE]
    assert rig.ledger.get(key) is None
    assert not rig.backend.chunks


def test_a_folder_marker_is_acknowledged_without_a_document(rig: Rig) -> None:
    put(rig, "workspaces/acme/", "")
    rig.service().handle_message(s3_event("workspaces/acme/"), remaining_ms=60_000)
    assert rig.ledger.get("workspaces/acme/") is None
    assert not rig.dlq.messages


def test_object_metadata_readers_reach_every_chunk(rig: Rig) -> None:
    put(rig, "workspaces/acme/hr.md", sentences(8), users=("ann",), groups=("hr",))
    rig.service().handle_message(upsert_uri("workspaces/acme/hr.md"), remaining_ms=60_000)
    assert chunks_of(rig, "workspaces/acme/hr.md") == [("acme", ("ann",), ("hr",))]
    assert rig.record("workspaces/acme/hr.md").permissions_hash is not None


def test_changing_only_the_readers_rewrites_them_without_embedding_again(rig: Rig) -> None:
    # Given a document indexed open to its workspace
    put(rig, "workspaces/acme/hr.md", sentences(8))
    rig.service().handle_message(upsert_uri("workspaces/acme/hr.md"), remaining_ms=60_000)
    embedded = rig.embedder.embedded_texts
    chunk_ids = rig.record("workspaces/acme/hr.md").chunk_ids
    # When the same bytes come back with readers in the metadata (a copy onto itself)
    put(rig, "workspaces/acme/hr.md", sentences(8), groups=("hr",), etag="e2")
    rig.service().handle_message(upsert_uri("workspaces/acme/hr.md"), remaining_ms=60_000)
    # Then no chunk was embedded again, the same chunks now carry the readers
    assert rig.embedder.embedded_texts == embedded
    assert rig.backend.permission_updates == ["workspaces/acme/hr.md"]
    assert rig.record("workspaces/acme/hr.md").chunk_ids == chunk_ids
    assert chunks_of(rig, "workspaces/acme/hr.md") == [("acme", (), ("hr",))]
    # And a redelivery of the same state changes nothing more
    rig.service().handle_message(upsert_uri("workspaces/acme/hr.md"), remaining_ms=60_000)
    assert rig.backend.permission_updates == ["workspaces/acme/hr.md"]


def test_new_content_with_new_readers_leaves_no_kept_chunk_with_the_old_readers(rig: Rig) -> None:
    # Given a document readable by ann
    put(rig, "workspaces/acme/hr.md", sentences(8), users=("ann",))
    rig.service().handle_message(upsert_uri("workspaces/acme/hr.md"), remaining_ms=60_000)
    # When one sentence changes and the readers become bob (most chunks are kept, not re-embedded)
    put(rig, "workspaces/acme/hr.md", sentences(8) + " One more.", users=("bob",), etag="e2")
    rig.service().handle_message(upsert_uri("workspaces/acme/hr.md"), remaining_ms=60_000)
    # Then every chunk, kept or new, names bob only
    assert chunks_of(rig, "workspaces/acme/hr.md") == [("acme", ("bob",), ())]


def test_malformed_reader_metadata_is_refused_not_read_as_open() -> None:
    from service.ingest.messages import ObjectRef
    from service.ingest.objects import S3ObjectStore

    class Client:
        def get_object(self, **_: object) -> dict[str, object]:
            return {"Body": None, "ContentLength": 1, "Metadata": {"allowed-users": " , ,"}}

    with pytest.raises(PermanentIngestError, match="x-amz-meta-allowed-users lists no names"):
        S3ObjectStore(Client()).get(ObjectRef("b", "workspaces/acme/a.md"))


def test_an_inline_document_is_qualified_by_its_workspace_and_carries_its_readers(rig: Rig) -> None:
    document = make_document("notes", sentences(4)).model_copy(
        update={"workspace": "acme", "allowed_groups": ("eng",)}
    )
    body = json.dumps({"action": "upsert", "document": document.model_dump(mode="json")})
    rig.service().handle_message(body, remaining_ms=60_000)
    assert rig.record("workspaces/acme/notes").status is Status.INDEXED
    assert chunks_of(rig, "workspaces/acme/notes") == [("acme", (), ("eng",))]


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"workspace": "Not Valid"}, "invalid inline document: workspace"),
        ({"document_id": "workspaces/acme/x"}, "names a document in another workspace"),
        ({"allowed_users": ["a,b"]}, "invalid inline document: allowed_users"),
    ],
)
def test_an_inline_document_with_a_bad_workspace_or_readers_is_dead_lettered(
    rig: Rig, document: dict[str, object], reason: str
) -> None:
    body = make_document("notes", sentences(4)).model_dump(mode="json") | document
    rig.service().handle_message(json.dumps({"action": "upsert", "document": body}), remaining_ms=60_000)
    [(_, attributes)] = rig.dlq.messages
    assert reason in attributes[REASON_ATTRIBUTE]
    assert not rig.backend.chunks


@pytest.mark.parametrize(
    "body",
    [
        {"action": "delete", "document_id": "workspaces/acme/hr.md"},  # the full id, as `ragctl docs delete`
        {"action": "delete", "document_id": "hr.md", "workspace": "acme"},  # relative to its workspace
    ],
)
def test_a_direct_delete_names_a_workspace_document_by_full_id_or_relative_to_it(
    rig: Rig, body: dict[str, str]
) -> None:
    put(rig, "workspaces/acme/hr.md", sentences(4))
    rig.service().handle_message(upsert_uri("workspaces/acme/hr.md"), remaining_ms=60_000)
    rig.service().handle_message(json.dumps(body), remaining_ms=60_000)
    assert rig.record("workspaces/acme/hr.md").status is Status.DELETED
    assert not rig.backend.chunks
    assert not rig.dlq.messages


def test_a_malformed_workspace_key_is_dead_lettered_as_that_document_with_its_message(rig: Rig) -> None:
    # Given an object under a malformed workspace id
    put(rig, "workspaces/Bad_Id/a.md", sentences(3))
    body = upsert_uri("workspaces/Bad_Id/a.md")
    # When its message is handled / Then the message itself is dead-lettered, naming the document
    rig.service().handle_message(body, remaining_ms=60_000)
    [(sent, attributes)] = rig.dlq.messages
    assert sent == body
    assert attributes[DOCUMENT_ATTRIBUTE] == "workspaces/Bad_Id/a.md"


def test_without_a_dlq_a_malformed_workspace_key_is_never_acknowledged(rig: Rig) -> None:
    # Given no DLQ / When a message names a malformed workspace key
    put(rig, "workspaces/Bad_Id/a.md", sentences(3))
    with pytest.raises(PermanentIngestError) as raised:
        rig.service(dlq=False).handle_message(upsert_uri("workspaces/Bad_Id/a.md"), remaining_ms=60_000)
    # Then it raises with the reason (redelivered, then redriven), and records nothing
    assert "workspace id 'Bad_Id' is malformed" in raised.value.reason
    assert rig.ledger.get("workspaces/Bad_Id/a.md") is None


def test_changing_only_an_inline_documents_readers_rewrites_them_without_embedding_again(rig: Rig) -> None:
    # Given an inline document indexed for group eng
    def upsert(users: tuple[str, ...], groups: tuple[str, ...]) -> None:
        document = make_document("notes", sentences(8)).model_copy(
            update={"workspace": "acme", "allowed_users": users, "allowed_groups": groups}
        )
        body = json.dumps({"action": "upsert", "document": document.model_dump(mode="json")})
        rig.service().handle_message(body, remaining_ms=60_000)

    upsert((), ("eng",))
    embedded = rig.embedder.embedded_texts
    # When the same text comes back readable by ann and group hr
    upsert(("ann",), ("hr",))
    # Then nothing is embedded again, and every chunk carries the new readers
    assert rig.embedder.embedded_texts == embedded
    assert rig.backend.permission_updates == ["workspaces/acme/notes"]
    assert chunks_of(rig, "workspaces/acme/notes") == [("acme", ("ann",), ("hr",))]
    # And the ledger remembers them: the same state again rewrites nothing
    upsert(("ann",), ("hr",))
    assert rig.backend.permission_updates == ["workspaces/acme/notes"]


def test_new_content_with_the_same_readers_rewrites_no_permissions(rig: Rig) -> None:
    # Given a document readable by ann
    put(rig, "workspaces/acme/hr.md", sentences(8), users=("ann",))
    rig.service().handle_message(upsert_uri("workspaces/acme/hr.md"), remaining_ms=60_000)
    # When its content changes but its readers do not
    put(rig, "workspaces/acme/hr.md", sentences(8) + " One more.", users=("ann",), etag="e2")
    rig.service().handle_message(upsert_uri("workspaces/acme/hr.md"), remaining_ms=60_000)
    # Then no permission rewrite ran over the index (the kept chunks already name ann)
    assert rig.backend.permission_updates == []
    assert chunks_of(rig, "workspaces/acme/hr.md") == [("acme", ("ann",), ())]


def test_a_deleted_document_keeps_no_content_or_readers_hash(rig: Rig) -> None:
    # Given a document with readers, indexed
    put(rig, "workspaces/acme/hr.md", sentences(4), groups=("hr",))
    rig.service().handle_message(upsert_uri("workspaces/acme/hr.md"), remaining_ms=60_000)
    assert rig.record("workspaces/acme/hr.md").permissions_hash is not None
    # When it is deleted
    del rig.objects.stored["workspaces/acme/hr.md"]
    rig.service().handle_message(upsert_uri("workspaces/acme/hr.md"), remaining_ms=60_000)
    # Then the ledger describes nothing indexed: no chunks, no content, no readers
    record = rig.record("workspaces/acme/hr.md")
    assert record.status is Status.DELETED
    assert (record.chunk_ids, record.content_hash, record.permissions_hash) == ((), None, None)


@pytest.mark.parametrize(
    "new_text",
    [
        pytest.param(sentences(8), id="same-content"),
        pytest.param(sentences(8) + " One more.", id="new-content"),
    ],
)
def test_a_failing_permission_rewrite_is_retried_later_and_the_ledger_names_the_step(
    rig: Rig, new_text: str
) -> None:
    # Given a document indexed for ann, and an index whose permission rewrite times out
    put(rig, "workspaces/acme/hr.md", sentences(8), users=("ann",))
    rig.service().handle_message(upsert_uri("workspaces/acme/hr.md"), remaining_ms=60_000)

    def update_permissions(
        document_id: str, allowed_users: Sequence[str], allowed_groups: Sequence[str]
    ) -> int:
        raise TimeoutError("update_by_query timed out")

    rig.backend.update_permissions = update_permissions  # type: ignore[method-assign]
    # When its readers change to bob (with or without new content)
    put(rig, "workspaces/acme/hr.md", new_text, users=("bob",), etag="e2")
    # Then the message is redelivered, and the ledger says which step failed
    with pytest.raises(TransientIngestError):
        rig.service().handle_message(upsert_uri("workspaces/acme/hr.md"), remaining_ms=60_000)
    record = rig.record("workspaces/acme/hr.md")
    assert record.status is Status.QUEUED
    assert record.last_error is not None
    assert record.last_error.startswith("retrying: update permissions: still failing")


def test_a_continuation_cannot_move_an_inline_document_into_another_workspace(rig: Rig) -> None:
    # Given a continuation-style message (already qualified) whose document id and workspace disagree
    document = make_document("workspaces/acme/notes", sentences(4)).model_copy(update={"workspace": "globex"})
    body = json.dumps({"action": "upsert", "qualified": True, "document": document.model_dump(mode="json")})
    # When it is handled / Then it is dead-lettered naming both workspaces, and nothing is indexed or recorded
    rig.service().handle_message(body, remaining_ms=60_000)
    [(sent, attributes)] = rig.dlq.messages
    assert sent == body
    assert attributes[REASON_ATTRIBUTE] == (
        "workspaces/acme/notes: the document says workspace 'globex', its id is in 'acme'"
    )
    assert rig.ledger.get("workspaces/acme/notes") is None
    assert not rig.backend.chunks
