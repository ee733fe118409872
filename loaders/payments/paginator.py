"""dlt's JSON cursor paginator, made strict: a repeated or missing cursor is an error.

A cursor the API already handed out in this pagination would make dlt loop forever; a
page saying `has_more` without a cursor would make it stop early without a word; an API
handing out a new cursor on every (empty) page would page forever. All three fail
instead, naming the endpoint (the last one at `max_pages`).
"""

from __future__ import annotations

from typing import Any

from dlt.common import jsonpath
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator
from requests import Request, Response

from loaders.payments.responses import shape


class PaginationError(Exception):
    hint = "the API's pagination is broken; report it to its owner, then rerun"


class CheckedCursorPaginator(JSONResponseCursorPaginator):
    """`type = "cursor"` in the configuration; fails where dlt's would loop or stop early."""

    def __init__(
        self, *args: Any, endpoint: str = "", max_pages: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.endpoint = endpoint
        self.max_pages = max_pages
        self._seen: set[str] = set()
        self._pages = 0

    def init_request(self, request: Request) -> None:
        self._seen, self._pages = set(), 0
        super().init_request(request)

    # dlt's own messages quote the whole response (row values): say its shape instead
    def _handle_missing_has_more(self, response_json: Any) -> None:
        raise PaginationError(
            f"endpoint `{self.endpoint}`: missing key {self.has_more_path} in"
            f" {shape(response_json)}"
        )

    def _handle_invalid_has_more(self, has_more: Any) -> None:
        raise PaginationError(
            f"endpoint `{self.endpoint}`: {self.has_more_path} is {shape(has_more)}, not a boolean"
        )

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        super().update_state(response, data)
        self._pages += 1
        cursor = self._next_reference
        if cursor is None:
            more = self.has_more_path and jsonpath.find_values(self.has_more_path, response.json())
            if more and more[0] in (True, "true", "True", 1):
                raise PaginationError(
                    f"endpoint `{self.endpoint}` said it has more after page {self._pages}"
                    " but gave no cursor"
                )
            return
        if not self.has_next_page:
            return
        if self.max_pages is not None and self._pages >= self.max_pages:
            raise PaginationError(
                f"endpoint `{self.endpoint}` still had more after {self._pages} pages, the"
                " maximum: pagination looks endless (if not, raise max_pages in"
                " [sources.payments])"
            )
        key = str(cursor)
        if key in self._seen:
            raise PaginationError(
                f"endpoint `{self.endpoint}` repeated a cursor after page {self._pages}:"
                " pagination would never end"
            )
        self._seen.add(key)
