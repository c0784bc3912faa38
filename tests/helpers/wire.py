"""An answer's wire text (a JSON body or an SSE stream) parsed as the suites' Chat parses it."""
from __future__ import annotations

import json

from glmverify.chat import StreamAssembler, parse_completion


def parse_answer(text: str, stream: bool, request: dict | None = None):
    """The ChatResult of ``text``, keeping its wire form; ``request`` set as the one that was sent."""
    if stream:
        asm = StreamAssembler()
        for line in text.splitlines():
            asm.feed_line(line)
        res = asm.result()
    else:
        res = parse_completion(json.loads(text))
    if request is not None:
        res.request = request
    return res
