"""Property-based tests (hypothesis) for the ledger and the version-ordering rules."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.ingest.chunking import Chunker
from service.ingest.indexer import Indexer
from service.ingest.ledger import ClaimOutcome, SqliteLedger, Status, decide_claim, order_key
from service.ingest.objects import StoredObject
from service.ingest.service import IngestLimits, IngestService
from tests.factories import HashingEmbedder, make_document
from tests.ingest_fakes import MemoryBackend

sequencers = st.integers(min_value=0, max_value=2**72)


@given(sequencers, sequencers, st.integers(0, 6), st.integers(0, 6))
def test_order_keys_sort_like_the_numbers_they_encode(a: int, b: int, pad_a: int, pad_b: int) -> None:
    # Given two sequencers written with any amount of left padding and either case
    left, right = "0" * pad_a + f"{a:x}", "0" * pad_b + f"{b:X}"
    # Then comparing their order keys compares the numbers
    key_a, key_b = order_key(left), order_key(right)
    assert key_a is not None
    assert key_b is not None
    assert (key_a < key_b) == (a < b)
    assert (key_a == key_b) == (a == b)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.none(), sequencers), min_size=1, max_size=25))
def test_claims_keep_the_newest_sequencer_and_refuse_only_older_ones(keys: list[int | None]) -> None:
    # Given any sequence of claims, each committed by its worker
    with tempfile.TemporaryDirectory() as tmp:
        ledger = SqliteLedger(Path(tmp) / "l.sqlite")
        newest: int | None = None
        for step, key in enumerate(keys):
            encoded = order_key(f"{key:x}") if key is not None else None
            claim = ledger.claim("doc", key=encoded, owner=f"w{step}", at=float(step), lease_until=step + 0.5)
            # Then a claim is stale exactly when its sequencer is older than the newest seen
            stale = key is not None and newest is not None and key < newest
            assert (claim.outcome is ClaimOutcome.STALE) == stale
            if not stale:
                assert ledger.commit(claim.record, owner=f"w{step}")
                newest = key if newest is None or (key is not None and key > newest) else newest
            stored = ledger.get("doc")
            assert stored is not None
            assert stored.sequencer == (order_key(f"{newest:x}") if newest is not None else None)
            assert stored.lease_owner is None
        ledger.close()


@given(st.booleans(), st.floats(0, 100), st.floats(0, 100))
def test_a_lease_blocks_only_other_owners_and_only_until_it_lapses(
    same_owner: bool, until: float, at: float
) -> None:
    from tests.unit.test_ledger_contract import _record

    existing = _record("doc", lease_owner="w1", lease_until=until)
    outcome = decide_claim(existing, None, "w1" if same_owner else "w2", at)
    assert (outcome is ClaimOutcome.BUSY) == (not same_owner and until > at)


class _NoObjects:
    def head_size(self, ref: object) -> int | None:
        return None

    def get(self, ref: object, max_bytes: int | None = None) -> StoredObject | None:
        return None


def _version_text(version: int) -> str:
    # Versions differ in length too, so older versions leave stale chunks to clean up.
    return " ".join(
        f"Version {version} sentence {i} on subject {i % 3}." for i in range(3 + (version * 7) % 23)
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.integers(1, 12), min_size=1, max_size=12).flatmap(
        lambda versions: st.permutations(versions + versions[: len(versions) // 2])
    )
)
def test_any_delivery_order_with_duplicates_leaves_exactly_the_newest_version(deliveries: list[int]) -> None:
    # Given versioned inline documents delivered in any order, with duplicates
    backend = MemoryBackend()
    embedder = HashingEmbedder(backend.dimension)
    chunker = Chunker(200, 20)
    with tempfile.TemporaryDirectory() as tmp:
        ledger = SqliteLedger(Path(tmp) / "l.sqlite")
        service = IngestService(
            Indexer(backend, embedder, chunker),
            _NoObjects(),
            ledger,
            1 << 20,
            limits=IngestLimits(reserve_seconds=0),
        )
        # When each delivery is handled
        for version in deliveries:
            document = make_document("doc", _version_text(version), title="doc")
            body = {
                "action": "upsert",
                "version": f"{version:x}",
                "document": document.model_dump(mode="json"),
            }
            service.handle_message(json.dumps(body))
        # Then the index holds exactly the newest version's chunks, and the ledger says so
        newest = make_document("doc", _version_text(max(deliveries)), title="doc")
        expected = {c.chunk_id for c in chunker.split(newest)}
        assert backend.chunk_ids_for_document("doc") == expected
        record = ledger.get("doc")
        assert record is not None
        assert record.status is Status.INDEXED
        assert set(record.chunk_ids) == expected
        assert record.sequencer == order_key(f"{max(deliveries):x}")
        ledger.close()
