"""The web page as a person uses it, in headless Chromium (Debian's package) driven by Playwright.

The API runs under uvicorn in a thread, on a free port, with a container of fakes: the
hashing embedder, a temporary index with two documents, and a ledger with their statuses.
The generator is the real extractive one, slowed down word by word so the stream is visible.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import uvicorn

from service.api.app import create_app
from service.api.tokens_dev import DEV_ALGORITHM, DEV_AUDIENCE, DEV_ISSUER, ensure_dev_key
from service.generate.extractive import ExtractiveGenerator
from service.ingest.chunking import Chunker
from service.ingest.indexer import Indexer
from service.ingest.ledger import LedgerRecord, SqliteLedger, Status
from service.models import SearchHit
from service.search.local import LocalSearchBackend
from service.settings import Settings
from service.wiring import Container
from tests.factories import HashingEmbedder, make_document

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
REPORTS = Path(__file__).resolve().parents[2] / "reports"
# Without the background-networking flags Chromium's own connections are refused on a closed
# network and slow it down; --no-sandbox because CI runs as root.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"
)


class SlowExtractive(ExtractiveGenerator):
    """The extractive answer, one word every 40 ms, as a model would stream it."""

    def stream(self, question: str, passages: Sequence[SearchHit]) -> Iterator[str]:
        for piece in super().stream(question, passages):
            for word in re.findall(r"\s*\S+", piece):
                time.sleep(0.04)
                yield word


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def page_settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """The page's API: a bootstrap key; with `indirect` param "sign-in", development tokens too."""
    if getattr(request, "param", None) == "sign-in":
        ensure_dev_key(tmp_path / "data")
        return Settings.model_validate(
            {
                "data_dir": tmp_path / "data",
                "api_keys": "page-key",
                "auth_dev_tokens": True,
                "auth_issuer": DEV_ISSUER,
                "auth_audience": DEV_AUDIENCE,
                "auth_algorithms": DEV_ALGORITHM,
                "auth_group_map": '{"readers": {"workspaces": ["default"], "role": "writer"}}',
            }
        )
    return Settings(data_dir=tmp_path / "data", api_keys="page-key")


@pytest.fixture
def served(tmp_path: Path, page_settings: Settings) -> Iterator[str]:
    settings = page_settings
    embedder = HashingEmbedder()
    backend = LocalSearchBackend(tmp_path / "index", embedder.dimension)
    backend.ensure_index()
    ledger = SqliteLedger(tmp_path / "ledger.sqlite")
    indexer = Indexer(backend, embedder, Chunker(400, 40))
    at = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
    for document in (
        make_document(
            "docs/deploy.md",
            "Deploying. To deploy to staging, run make deploy with STACK=staging. "
            "The pipeline runs the post-deploy smoke tests after every deploy to staging.",
            title="Deploying to staging",
        ),
        make_document(
            "docs/keys.md",
            "API keys. The API keys live in Secrets Manager and the platform rotates them every month.",
            title="API keys",
        ),
    ):
        indexer.index(document)
        ledger.put(
            LedgerRecord(
                document_id=document.document_id,
                status=Status.INDEXED,
                source=document.source,
                chunk_ids=tuple(sorted(backend.chunk_ids_for_document(document.document_id))),
                created_at=at,
                updated_at=at,
            )
        )
    # A document of another workspace: the default workspace's page never shows it
    launch = make_document(
        "workspaces/acme/launch.md",
        "Launch plan. The acme rocket launch happens on the first Friday of March.",
        title="Acme launch plan",
    ).model_copy(update={"workspace": "acme"})
    indexer.index(launch)
    ledger.put(
        LedgerRecord(
            document_id=launch.document_id,
            status=Status.INDEXED,
            workspace="acme",
            created_at=at,
            updated_at=at,
        )
    )
    ledger.put(
        LedgerRecord(
            document_id="docs/broken.pdf",
            status=Status.FAILED,
            last_error="not a PDF: no %PDF header",
            created_at=at,
            updated_at=at,
        )
    )
    container = Container(
        settings, backend=backend, embedder=embedder, ledger=ledger, generator=SlowExtractive()
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(container), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        ledger.close()
        backend.close()


@pytest.mark.timeout(90)
def test_a_person_asks_watches_the_answer_stream_and_opens_a_citation(served: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            # Given the page opened with the key in its fragment, as `ragctl dev` prints it
            page.goto(f"{served}/#key=page-key")
            # Then the documents table shows each document's ingestion status
            rows = page.locator("#documents tr")
            expect(rows).to_have_count(3)
            expect(page.locator("#documents")).to_contain_text("docs/deploy.md")
            expect(page.locator("#documents tr", has_text="docs/broken.pdf")).to_contain_text("failed")
            expect(page.locator("#documents tr", has_text="docs/broken.pdf")).to_contain_text("not a PDF")
            expect(page.locator("#doc-summary")).to_have_text("2 indexed, 1 failed")

            # When a question is asked
            page.get_by_label("Question").fill("How do I deploy to staging?")
            page.get_by_role("button", name="Ask").click()
            # Then the answer appears piece by piece: part of it is shown while it still streams
            answer = page.locator(".turn .answer").first
            expect(page.locator(".turn .answer.streaming")).to_have_count(1)
            expect(answer).to_contain_text("deploy", timeout=5000)
            partial = answer.inner_text()
            assert page.locator(".turn .answer.streaming").count() == 1, "the answer had finished already"
            # And when it is done it cites its source as a clickable [1]
            expect(page.locator(".turn .answer.streaming")).to_have_count(0, timeout=15000)
            full = answer.inner_text()
            assert len(full) > len(partial)
            assert "make deploy with STACK=staging" in full
            expect(page.locator("#mode")).to_contain_text("extractive")
            citation = page.locator(".turn ol.citations li").first
            expect(citation).to_contain_text("Deploying to staging")
            snippet = citation.locator(".snippet")
            expect(snippet).to_be_hidden()

            # When the person clicks [1] in the answer
            answer.locator("a.cite", has_text="[1]").first.click()
            # Then the cited passage opens, with the question's words highlighted
            expect(snippet).to_be_visible()
            expect(snippet).to_contain_text("run make deploy with STACK=staging")
            expect(snippet.locator("mark").first).to_be_visible()
            REPORTS.mkdir(exist_ok=True)
            page.screenshot(path=str(REPORTS / "page.png"), full_page=True)
        finally:
            browser.close()


@pytest.mark.timeout(60)
def test_a_wrong_key_is_explained_on_the_page(served: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{served}/#key=not-the-key")
            expect(page.locator("#documents")).to_contain_text("missing or invalid API key")
            page.get_by_label("Question").fill("How do I deploy?")
            page.get_by_role("button", name="Ask").click()
            expect(page.get_by_role("alert")).to_have_text(
                "missing or invalid API key in the x-api-key header"
            )
        finally:
            browser.close()


@pytest.mark.timeout(60)
def test_a_person_picks_a_workspace_and_sees_only_its_documents_and_answers(served: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{served}/#key=page-key")
            expect(page.locator("#documents tr")).to_have_count(3)  # the default workspace's
            # When the person picks workspace acme
            page.get_by_label("Workspace").fill("acme")
            page.get_by_role("button", name="Save").click()
            # Then the documents are acme's only, and an answer cites acme's document
            expect(page.locator("#documents tr")).to_have_count(1)
            expect(page.locator("#documents")).to_contain_text("workspaces/acme/launch.md")
            page.get_by_label("Question").fill("When is the rocket launch?")
            page.get_by_role("button", name="Ask").click()
            expect(page.locator(".turn .answer.streaming")).to_have_count(0, timeout=15000)
            expect(page.locator(".turn ol.citations li").first).to_contain_text("Acme launch plan")
            expect(page.locator(".turn ol.citations")).not_to_contain_text("Deploying to staging")
            # And the choice survives a reload
            page.reload()
            expect(page.get_by_label("Workspace")).to_have_value("acme")
        finally:
            browser.close()


@contextmanager
def browser_page() -> Iterator[Page]:
    """A fresh page in headless Chromium, closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("page_settings", ["sign-in"], indirect=True)
def test_a_person_signs_in_through_the_issuer_and_sees_the_documents(served: str) -> None:
    from playwright.sync_api import expect

    # The ingestion view needs a writer: the group map here makes "readers" writers of default
    with browser_page() as page:
        # Given the page with no key, on an API whose issuer is the local development issuer
        page.goto(served)
        expect(page.locator("#documents")).to_contain_text("missing or invalid API key")
        # When a person presses "Sign in", picks who to be at the issuer and comes back
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Development sign-in")).to_be_visible()
        assert "code_challenge_method=S256" in page.url
        page.get_by_label("User").fill("ann@example.com")
        page.get_by_label("Groups (comma-separated)").fill("readers")
        page.get_by_role("button", name="Sign in").click()
        # Then the page redeemed the code, says who they are and loads the documents with the token
        expect(page.locator("#signed-in")).to_have_text("signed in as ann@example.com")
        expect(page.locator("#documents")).to_contain_text("docs/deploy.md")
        # And the code is gone from the address bar; the token is in this tab's storage only
        assert page.url == f"{served}/"
        assert page.evaluate("sessionStorage.getItem('idToken')").count(".") == 2
        # (the ID token alone: no PKCE state left, no stored user with a refresh token)
        assert page.evaluate("Object.keys(sessionStorage)") == ["idToken"]
        assert page.evaluate("JSON.stringify(localStorage)").find("eyJ") < 0
        # And signing out forgets the token and falls back to the (missing) key
        page.get_by_role("button", name="Sign out").click()
        expect(page.locator("#documents")).to_contain_text("missing or invalid API key")
        assert page.evaluate("sessionStorage.getItem('idToken')") is None
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("page_settings", ["sign-in"], indirect=True)
def test_a_callback_the_page_did_not_start_signs_no_one_in(served: str) -> None:
    from playwright.sync_api import expect

    with browser_page() as page:
        # When the page is opened with a code and a state it never issued (a forged callback)
        page.goto(f"{served}/?code=forged&state=0123456789abcdef")
        # Then nobody is signed in, the error is shown, and the address bar is cleaned
        expect(page.locator("#error")).to_contain_text("Sign-in failed")
        expect(page.locator("#signed-in")).to_have_text("")
        assert page.url == f"{served}/"
        assert page.evaluate("sessionStorage.getItem('idToken')") is None


@pytest.mark.timeout(90)
def test_without_an_issuer_the_page_offers_no_sign_in(served: str) -> None:
    from playwright.sync_api import expect

    with browser_page() as page:
        page.goto(f"{served}/#key=page-key")
        expect(page.locator("#documents")).to_contain_text("docs/deploy.md")
        expect(page.locator("#token-form")).to_be_hidden()
        expect(page.locator("#sign-in")).to_be_hidden()
