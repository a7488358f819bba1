"""Server-sent events as whole events: the proxy relays an upstream's stream one event at a time.

An event ends with a blank line; lines end with CRLF, LF or CR (WHATWG HTML, "Server-sent
events", 9.2.5 and 9.2.6). Relaying whole events means that whatever an upstream leaves
half-written when it breaks off, the client receives only well-formed events, and the error
event that follows starts on a line of its own.
"""

from __future__ import annotations

import json
import re

_LINE_END = re.compile(rb"\r\n|\r|\n")
_FIELD_LINE = re.compile(r"\r\n|\r|\n")


class EventTooLarge(ValueError):
    """An event grew past the splitter's limit without ending (a stream that is not SSE)."""


class EventSplitter:
    """Cuts a byte stream into whole events, each returned as received, with its blank line.

        splitter = EventSplitter(1 << 20)
        splitter.feed(b"data: 1\\n\\ndata: 2")  # -> [b"data: 1\\n\\n"]
        splitter.pending                         # -> b"data: 2" (half-written so far)
    """

    def __init__(self, max_event_bytes: int):
        self.max_event_bytes = max_event_bytes
        self._buffer = bytearray()
        self._line_start = 0  # where the line being read starts in the buffer
        self._after_cr = False  # the last byte read was a CR that ended a line

    def feed(self, chunk: bytes) -> list[bytes]:
        """The events that `chunk` completes, in order. Raises EventTooLarge when the event
        being read passes `max_event_bytes`."""
        if self._after_cr and chunk:
            # A CR ended the last chunk: a LF starting this one belongs to it (one CRLF), and
            # is dropped so that it cannot end a second, blank, line.
            chunk = chunk[1:] if chunk.startswith(b"\n") else chunk
            self._after_cr = False
        self._buffer += chunk
        events, event_start = [], 0
        for end in _LINE_END.finditer(self._buffer, self._line_start):
            if end.start() == self._line_start:  # a blank line: the event is whole
                events.append(bytes(self._buffer[event_start:end.end()]))
                event_start = end.end()
            self._line_start = end.end()
            self._after_cr = end.group() == b"\r" and end.end() == len(self._buffer)
        del self._buffer[:event_start]
        self._line_start -= event_start
        if len(self._buffer) > self.max_event_bytes:
            raise EventTooLarge(f"an event of more than {self.max_event_bytes:,} bytes "
                                "without a blank line")
        return events

    @property
    def pending(self) -> bytes:
        """The bytes of an event not yet whole (empty between events)."""
        return bytes(self._buffer)


def event_data(event: bytes) -> str | None:
    """The data of an event (its `data` lines joined by LF), None when it has none (a comment
    or keep-alive such as `: ping`, or only `event`/`id`/`retry` fields)."""
    values = []
    for line in _FIELD_LINE.split(event.decode("utf-8", errors="replace")):
        if not line or line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if name == "data":
            values.append(value[1:] if value.startswith(" ") else value)
    return "\n".join(values) if values else None


def error_event(message: str, code: str) -> bytes:
    """An OpenAI-style error as one event; OpenAI clients raise it as an APIError."""
    error = {"error": {"message": message, "type": "server_error", "code": code}}
    return f"data: {json.dumps(error)}\n\n".encode()
