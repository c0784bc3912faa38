"""Suite-wide fixtures: the stream/non-stream axis, added once so test bodies stay the same.

Every suite module is one matrix feature (``pytestmark = pytest.mark.feature(...)``); each test is
one check. Tests get the row's live engine from the ``engine`` fixture (glmverify.plugin), send
their requests concurrently through ``Chat.many`` and record what they saw in ``evidence``.
"""
from __future__ import annotations

import pytest

from glmverify.chat import Chat
from glmverify.policy import request_timeout

@pytest.fixture(params=[False, True], ids=["nonstream", "stream"])
def stream(request) -> bool:
    return request.param


@pytest.fixture
def chat(engine, stream, options) -> Chat:
    return Chat(engine, stream=stream, concurrency=options.concurrency, timeout=request_timeout(engine.row, options))


@pytest.fixture
def chat_nonstream(engine, options) -> Chat:
    return Chat(engine, stream=False, concurrency=options.concurrency, timeout=request_timeout(engine.row, options))
