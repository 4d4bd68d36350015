"""The Search tab as a test sees it in Chromium: what to click and what to read, by the tab's elem_ids."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Page, expect

from webui.search_tab import MAX_COLUMNS, TOP_K

TIMEOUT_MS = 30_000


@dataclass
class SearchPage:
    page: Page

    def open(self, url: str) -> SearchPage:
        self.page.goto(url)
        expect(self.page.locator("#search-button")).to_be_visible(timeout=TIMEOUT_MS)
        return self

    def choose(self, collection: str, retrievers: list[str]) -> None:
        """Pick a collection and exactly ``retrievers`` (by their labels)."""
        self.page.locator(f"#collection input[value='{collection}']").check()
        boxes = self.page.locator("#retrievers label")
        expect(boxes.first).to_be_visible()
        for i in range(boxes.count()):
            box = boxes.nth(i)
            box.locator("input").set_checked(box.text_content().strip() in retrievers)

    def search(self, text: str = "", expect_status: str = r"Searched |⚠️ |The query had ") -> None:
        """Search and wait for its answer: a status that differs from the one before and starts with
        ``expect_status`` (a regex); while a search runs, the status shows Gradio's timer instead."""
        self.page.locator("#query-text textarea").fill(text)
        before = self.status()
        self.page.locator("#search-button").click()
        self.page.wait_for_function(
            """([before, pattern]) => {
                const text = document.querySelector('#search-status').innerText.trim();
                return text !== before && new RegExp(pattern).test(text);
            }""",
            arg=[before, f"^({expect_status})"],
            timeout=TIMEOUT_MS,
        )

    def upload_query_image(self, path: Path) -> None:
        self.page.locator("#query-image input[type=file]").set_input_files(str(path))

    def screenshot(self, path: Path, full_page: bool = True) -> None:
        """Cards load their images lazily: scroll each into view once, so that a full-page shot shows them."""
        if full_page:
            self.page.evaluate(
                """async () => {
                    for (let y = 0; y < document.body.scrollHeight; y += 500) {
                        window.scrollTo(0, y);
                        await new Promise((done) => setTimeout(done, 30));
                    }
                    window.scrollTo(0, 0);
                }"""
            )
            self.page.wait_for_function("() => [...document.images].every((img) => img.complete)")
        self.page.screenshot(path=path, full_page=full_page)

    def status(self) -> str:
        return self.page.locator("#search-status").inner_text().strip()

    def visible_columns(self) -> list[int]:
        return [c for c in range(MAX_COLUMNS) if self.page.locator(f"#grade-{c}-0").is_visible()]

    def card(self, column: int, rank: int):
        return self.page.locator(f"#card-{column}-{rank}").first

    def card_texts(self, column: int) -> list[str]:
        texts = []
        for r in range(TOP_K):
            card = self.card(column, r)
            if card.is_visible():
                texts.append(card.locator(".prose.card-text").inner_text().strip())
        return texts

    def card_has_image(self, column: int, rank: int) -> bool:
        return self.card(column, rank).locator(".card-image img").is_visible()

    def grade(self, column: int, rank: int, grade: int) -> None:
        self.page.locator(f"#grade-{column}-{rank} input[value='{grade}']").check()
        expect(self.page.locator("#search-status")).to_contain_text(f"Saved: grade {grade}", timeout=TIMEOUT_MS)

    def show(self, modality: str) -> None:
        """Pick the modality filter: "all", "images" or "texts"."""
        self.page.locator(f"#modality-filter input[value='{modality}']").check()

    @property
    def detail(self):
        """The document panel (a Group: Gradio renders it as two nested divs with the same id)."""
        return self.page.locator("#doc-detail").first

    def open_details(self, column: int, rank: int) -> str:
        if self.detail.is_visible():
            self.page.locator("#doc-detail-close").click()
            expect(self.detail).to_be_hidden()
        self.page.locator(f"#details-{column}-{rank}").click()
        expect(self.detail).to_be_visible(timeout=TIMEOUT_MS)
        expect(self.page.locator("#doc-detail-text")).to_contain_text("Id:", timeout=TIMEOUT_MS)
        return self.page.locator("#doc-detail-text").inner_text()
