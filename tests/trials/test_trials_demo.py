"""The demo's trial chapters, run on the demo consortium through a real node and real HTTP: every
step must get the receipt it expects (a refusal where the story shows one)."""

from __future__ import annotations

import io
import time
from pathlib import Path

from rich.console import Console

from careledger.api.server import BackgroundServer
from careledger.client import Client
from careledger.demo.consortium import create_consortium
from careledger.demo.story import Story, chapter_people
from careledger.demo.trials_story import CHAPTERS


def test_the_trial_chapters_tell_their_story(tmp_path: Path) -> None:
    consortium = create_consortium(tmp_path / "home", int(time.time() * 1000))
    node = consortium.home.open_node()
    node.start()
    out = io.StringIO()
    try:
        with BackgroundServer(node) as server, Client(server.url) as client:
            story = Story(client, consortium, Console(file=out, width=200))
            for chapter in (chapter_people, *CHAPTERS):
                chapter(story)
    finally:
        node.close()
    text = out.getvalue()
    for seen in ("TRIAL_CONSENT_STALE (5021)", "TRIAL_RECONSENT_REQUIRED (5028)", "OVERDUE", "WHO extensions",
                 "flagged: time_frame_changed P1 (silent)", "checks offline"):
        assert seen in text, f"{seen!r} missing from the trial chapters:\n{text[-3000:]}"
    assert "results_late" not in text and "flagged" in text
