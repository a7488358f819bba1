"""The HTTP cases of bench/bad_inputs.py: (name, method, path, body, headers, expected), and the
raw-socket ones (name, bytes, expected). `expected` is "ok", "error" (any 4xx with a JSON
message), "error NNN" (that status) or "refused" (any 4xx: the HTTP parser's own answer).
Issue 14's cases first, then /v1/responses (the Responses API's `input`), issue 25 (content
types, Host, Origin) and issue 23 item 5 (hostile JSON), on every POST endpoint, then what only a
raw socket can send (issue 23 item 2: bodies that stall)."""

from __future__ import annotations

import json
from typing import Any

SURROGATE = "great phone \ud83d"
CUT_EMOJI_JSON = b'{"prompt": "great phone \\ud83d"}'
NULL_PART = [{"role": "user", "content": [{"type": "text", "text": None}]}]
IMAGE_ONLY = [{"role": "user", "content": "Describe the picture."},
              {"role": "user", "content": [{"type": "image_url",
                                            "image_url": {"url": "data:image/png;base64,AAAA"}}]}]
TOOL_TURN = [{"role": "user", "content": "What is the weather in Paris?"},
             {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {
                 "name": "weather", "arguments": "{\"city\": \"Paris\"}"}}]},
             {"role": "tool", "tool_call_id": "c1", "content": "18 C"},
             {"role": "user", "content": "And tomorrow?"}]
USER = [{"role": "user", "content": "What is 2 plus 2?"}]

# (name, method, path, body (dict -> JSON, bytes -> raw), headers, expected)
HTTP_CASES: list[tuple[str, str, str, Any, dict[str, str], str]] = [
    ("route lone surrogate (JSON escape)", "POST", "/v1/route", CUT_EMOJI_JSON, {}, "error"),
    ("route invalid UTF-8 bytes in body", "POST", "/v1/route",
     b'{"prompt": "bad \xff\xfe bytes"}', {}, "error"),
    ("route null text part", "POST", "/v1/route", {"prompt": NULL_PART}, {}, "error"),
    ("route number text part", "POST", "/v1/route",
     {"prompt": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}, {}, "error"),
    ("route part not an object", "POST", "/v1/route",
     {"prompt": [{"role": "user", "content": ["hi"]}]}, {}, "error"),
    ("route role not a string", "POST", "/v1/route",
     {"prompt": [{"role": 3, "content": "hi"}]}, {}, "error"),
    ("route prompt null", "POST", "/v1/route", {"prompt": None}, {}, "error"),
    ("route prompt number", "POST", "/v1/route", {"prompt": 42}, {}, "error"),
    ("route prompt object", "POST", "/v1/route", {"prompt": {"text": "hi"}}, {}, "error"),
    ("route prompt empty", "POST", "/v1/route", {"prompt": "  "}, {}, "error"),
    ("route prompts mixed", "POST", "/v1/route", {"prompts": ["ok", None]}, {}, "error"),
    ("route prompts surrogate 2nd", "POST", "/v1/route",
     b'{"prompts": ["ok", "half \\udc00 emoji"]}', {}, "error"),
    ("route threshold NaN literal", "POST", "/v1/route",
     b'{"prompt": "hi", "threshold": NaN}', {}, "error"),
    ("route threshold Infinity", "POST", "/v1/route",
     b'{"prompt": "hi", "threshold": Infinity}', {}, "error"),
    ("route threshold string", "POST", "/v1/route", {"prompt": "hi", "threshold": "0.5"}, {},
     "error"),
    ("route threshold 2", "POST", "/v1/route", {"prompt": "hi", "threshold": 2}, {}, "error"),
    ("route image-only conversation", "POST", "/v1/route",
     {"prompt": IMAGE_ONLY[1:]}, {}, "error"),
    ("route tool_calls turn, no content", "POST", "/v1/route", {"prompt": TOOL_TURN}, {}, "ok"),
    ("route body not JSON", "POST", "/v1/route", b"prompt=hi", {}, "error"),
    ("route body a list", "POST", "/v1/route", b'["hi"]', {}, "error"),
    ("chat lone surrogate", "POST", "/v1/chat/completions",
     b'{"messages": [{"role": "user", "content": "great phone \\ud83d"}]}', {}, "error"),
    ("chat null text part", "POST", "/v1/chat/completions", {"messages": NULL_PART}, {}, "error"),
    ("chat tool_calls turn, no content", "POST", "/v1/chat/completions",
     {"messages": TOOL_TURN}, {}, "ok"),
    ("chat image-only last turn", "POST", "/v1/chat/completions", {"messages": IMAGE_ONLY}, {},
     "ok"),
    ("chat only an image", "POST", "/v1/chat/completions", {"messages": IMAGE_ONLY[1:]}, {},
     "ok"),
    ("chat threshold header nan", "POST", "/v1/chat/completions", {"messages": USER},
     {"x-confroute-threshold": "nan"}, "error"),
    ("chat threshold field NaN", "POST", "/v1/chat/completions",
     b'{"messages": [{"role": "user", "content": "hi"}], "confroute_threshold": NaN}', {},
     "error"),
    ("chat messages a string", "POST", "/v1/chat/completions", {"messages": "hi"}, {}, "error"),
    ("chat message not an object", "POST", "/v1/chat/completions", {"messages": ["hi"]}, {},
     "error"),
    ("chat user turn without content", "POST", "/v1/chat/completions",
     {"messages": [{"role": "user"}]}, {}, "error"),
    ("GET /v1/models", "GET", "/v1/models", None, {}, "ok"),
    ("OPTIONS preflight (CORS on)", "OPTIONS", "/v1/chat/completions", None,
     {"origin": "http://localhost:3000", "access-control-request-method": "POST",
      "access-control-request-headers": "content-type"}, "ok"),
]
R = "/v1/responses"
_PARTS = [{"type": "input_text", "text": "Describe it."},
          {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]
HTTP_CASES += [
    ("responses input a string", "POST", R, {"input": "What is 2 plus 2?"}, {}, "ok"),
    ("responses input messages with parts", "POST", R,
     {"input": [{"type": "message", "role": "user", "content": _PARTS}],
      "instructions": "Be brief."}, {}, "ok"),
    ("responses only an image", "POST", R,
     {"input": [{"role": "user", "content": _PARTS[1:]}]}, {}, "ok"),
    ("responses only a tool output", "POST", R,
     {"input": [{"type": "function_call_output", "call_id": "c", "output": "18 C"}]}, {}, "ok"),
    ("responses streamed", "POST", R, {"input": "hi", "stream": True}, {}, "ok"),
    ("responses no input", "POST", R, {"model": "confroute"}, {}, "error 422"),
    ("responses input null", "POST", R, {"input": None}, {}, "error 422"),
    ("responses input a number", "POST", R, {"input": 7}, {}, "error 422"),
    ("responses input an object", "POST", R, {"input": {"text": "hi"}}, {}, "error 422"),
    ("responses input an empty list", "POST", R, {"input": []}, {}, "error 422"),
    ("responses input empty", "POST", R, {"input": " "}, {}, "error 422"),
    ("responses item a string", "POST", R, {"input": ["hi"]}, {}, "error 422"),
    ("responses role a number", "POST", R, {"input": [{"role": 1, "content": "hi"}]}, {},
     "error 422"),
    ("responses content a number", "POST", R, {"input": [{"role": "user", "content": 1}]}, {},
     "error 422"),
    ("responses part a string", "POST", R, {"input": [{"role": "user", "content": ["hi"]}]},
     {}, "error 422"),
    ("responses input_text null", "POST", R, {"input": [{"role": "user", "content": [
        {"type": "input_text", "text": None}]}]}, {}, "error 422"),
    ("responses instructions a number", "POST", R, {"input": "hi", "instructions": 3}, {},
     "error 422"),
    ("responses lone surrogate", "POST", R, b'{"input": "great phone \\ud83d"}', {},
     "error 422"),
    ("responses unknown forced model", "POST", R,
     {"input": "hi", "confroute_force_model": "gpt-9"}, {}, "error 422"),
    ("responses input over max_prompt_chars", "POST", R, {"input": "x" * 150_000}, {},
     "error 413"),
]
CHAT_JSON = json.dumps({"messages": USER}).encode()
ROUTE_JSON = b'{"prompt": "hi"}'
RESPONSES_JSON = b'{"input": "hi"}'
# Issue 25 item 1: bodies a web page can send without asking first, and other non-JSON types.
for _type in ("text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
              "multipart/form-data; boundary=x", "", "text/json", "application/jsonx",
              "application/json; charset=latin-1", "application/json, text/plain"):
    for _path, _body in (("/v1/chat/completions", CHAT_JSON), ("/v1/route", ROUTE_JSON),
                         ("/v1/completions", CHAT_JSON), (R, RESPONSES_JSON)):
        HTTP_CASES.append((f"{_path} Content-Type {_type!r}", "POST", _path, _body,
                           {"content-type": _type}, "error 415"))
for _type in ("application/json; charset=utf-8", "Application/JSON", "application/vnd.x+json"):
    HTTP_CASES.append((f"chat Content-Type {_type!r}", "POST", "/v1/chat/completions", CHAT_JSON,
                       {"content-type": _type}, "ok"))
# Issue 25 item 2: Host names on a loopback address.
for _host in ("localhost", "localhost:8000", "LOCALHOST", "127.0.0.1:1", "127.0.0.2", "[::1]",
              "[::1]:8000", "[0:0:0:0:0:0:0:1]", "[::ffff:127.0.0.1]"):
    HTTP_CASES.append((f"Host {_host}", "GET", "/v1/models", None, {"host": _host}, "ok"))
for _host in ("evil.example", "localhost.evil.example", "evil-localhost", "localhostevil",
              "127.0.0.1.nip.io", "localhost.", "127.0.0.1.", "foo.localhost", "localhost:abc",
              "localhost:99999", "::1", "[::1", "0.0.0.0", "127.1", "2130706433", "user@localhost",
              "localhost:8000@evil.example", ""):
    for _method, _path, _body in (("GET", "/v1/models", None), ("GET", "/metrics", None),
                                  ("POST", "/v1/chat/completions", CHAT_JSON),
                                  ("POST", R, RESPONSES_JSON)):
        HTTP_CASES.append((f"{_method} {_path} Host {_host!r}", _method, _path, _body,
                           {"host": _host, "content-type": "application/json"}, "error 403"))
# Issue 25 item 3: Origin (CORS allows http://localhost:3000 here) and Sec-Fetch-Site.
for _origin in ("http://evil.example", "null", "http://localhost:3001", "https://localhost:3000",
                "http://localhost:3000.evil.example", "http://localhost:3000/", "file://", ""):
    HTTP_CASES.append((f"chat Origin {_origin!r}", "POST", "/v1/chat/completions", CHAT_JSON,
                       {"origin": _origin, "content-type": "text/plain"}, "error 403"))
    HTTP_CASES.append((f"GET /v1/models Origin {_origin!r}", "GET", "/v1/models", None,
                       {"origin": _origin}, "error 403"))
    HTTP_CASES.append((f"responses Origin {_origin!r}", "POST", R, RESPONSES_JSON,
                       {"origin": _origin, "content-type": "application/json"}, "error 403"))
HTTP_CASES += [
    ("chat Origin allowed", "POST", "/v1/chat/completions", CHAT_JSON,
     {"origin": "http://localhost:3000", "content-type": "application/json"}, "ok"),
    ("GET /metrics Sec-Fetch-Site cross-site", "GET", "/metrics", None,
     {"sec-fetch-site": "cross-site"}, "error 403"),
    ("GET /metrics Sec-Fetch-Site none", "GET", "/metrics", None, {"sec-fetch-site": "none"},
     "ok"),
]
# Issue 23 item 5: hostile JSON, on both endpoints.
_USER = json.dumps(USER)
for _name, _route, _chat in [
        ("nesting 101 deep", '{"prompt": "a", "x": ' + "[" * 101 + "]" * 101 + "}",
         '{"messages": ' + _USER + ', "x": ' + "[" * 101 + "]" * 101 + "}"),
        ("nesting 100,000 deep", '{"prompt": ' + "[" * 100_000 + "}",
         '{"messages": ' + "{" * 100_000 + "}"),
        ("a 5,000-digit integer", '{"prompt": "a", "threshold": ' + "1" * 5000 + "}",
         '{"messages": ' + _USER + ', "max_tokens": ' + "9" * 5000 + "}"),
        ("a 5,000-digit fraction", '{"prompt": "a", "threshold": 0.' + "1" * 5000 + "}",
         '{"messages": ' + _USER + ', "temperature": 0.' + "5" * 5000 + "}"),
        ("1e999", '{"prompt": "a", "threshold": 1e999}',
         '{"messages": ' + _USER + ', "temperature": -1e999}'),
        ("NaN in a forwarded field", '{"prompt": "a", "threshold": [NaN]}',
         '{"messages": ' + _USER + ', "top_p": NaN}'),
        ("-Infinity nested", '{"prompts": ["a"], "x": {"y": -Infinity}}',
         '{"messages": ' + _USER + ', "logit_bias": {"1": -Infinity}}'),
        ("a repeated key", '{"prompt": "a", "prompt": "b"}',
         '{"messages": ' + _USER + ', "messages": []}'),
        ("a number as the whole body", "9" * 5000, "-1e999"),
        ("a 900 kB string", json.dumps({"prompt": "x" * 900_000}),
         json.dumps({"messages": [{"role": "user", "content": "x" * 900_000}]})),
        ("an array of 200,000 items", json.dumps({"prompts": [0] * 200_000}),
         json.dumps({"messages": [{}] * 200_000})),
]:
    HTTP_CASES.append((f"route {_name}", "POST", "/v1/route", _route.encode(), {}, "error"))
    HTTP_CASES.append((f"chat {_name}", "POST", "/v1/chat/completions", _chat.encode(), {},
                       "error"))
    # the same hostile JSON with the Responses API's field names
    _responses = _chat.replace('"messages": ' + _USER, '"input": "hi"') \
        .replace('"messages": ', '"input": ').replace('"max_tokens"', '"max_output_tokens"')
    HTTP_CASES.append((f"responses {_name}", "POST", R, _responses.encode(), {}, "error"))

_HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n" \
        b"Content-Type: application/json\r\n"
RAW_CASES: list[tuple[str, bytes, str]] = [  # (name, bytes sent, expected)
    ("HTTP/1.0 without Host", b"GET /v1/models HTTP/1.0\r\n\r\n", "error 403"),
    # uvicorn's HTTP parser (h11) refuses this itself, in plain text, before the app runs
    ("two Host headers", b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\nHost: evil.example"
     b"\r\n\r\n", "refused"),
    ("absolute-form target, foreign authority", b"GET http://evil.example/v1/models HTTP/1.1"
     b"\r\nHost: localhost\r\n\r\n", "error 403"),
    ("absolute-form target, foreign Host", b"GET http://localhost/v1/models HTTP/1.1\r\n"
     b"Host: evil.example\r\n\r\n", "error 403"),
    ("absolute-form target, loopback", b"GET http://localhost/v1/models HTTP/1.1\r\n"
     b"Host: localhost\r\n\r\n", "ok"),
    ("Content-Length promises more than is sent", _HEAD + b"Content-Length: 500\r\n\r\n{",
     "error 408"),
    ("headers, then no body", _HEAD + b"Content-Length: 50\r\n\r\n", "error 408"),
    ("a chunked body that stalls", _HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\n{\"m\r\n",
     "error 408"),
]
