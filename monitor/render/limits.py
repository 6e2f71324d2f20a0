"""How long a rendered message may be: Slack's documented limits, with a margin where Slack
enforces an undocumented one, and the email subject's length."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Size limits the renderers keep to; the defaults are Slack's and a readable subject."""

    # "You can include up to 50 blocks in each message"
    # (https://api.slack.com/reference/block-kit/blocks).
    slack_blocks: int = 50
    # A text object's text: "maximum length is 3000 characters"
    # (https://docs.slack.dev/reference/block-kit/composition-objects/text-object).
    slack_section_chars: int = 3000
    # A header block's text: "Maximum length ... is 150 characters"
    # (https://docs.slack.dev/reference/block-kit/blocks/header-block).
    slack_header_chars: int = 150
    # The blocks of one message together: Slack rejects a message whose blocks hold more than
    # about 12,000-13,000 characters with `msg_blocks_too_long`, a limit its docs do not state
    # (https://github.com/slackapi/bolt-js/issues/2509, .../issues/2867); stay well below it.
    slack_payload_chars: int = 11_000
    # The top-level `text` is truncated beyond 40,000 characters
    # (https://api.slack.com/changelog/2018-04-truncating-really-long-messages).
    slack_text_chars: int = 40_000
    # RFC 5322 2.1.1 wants header lines under 78 characters; a subject longer than a mail
    # client's list column is not read anyway. The cut keeps "what and how many" at the front.
    subject_chars: int = 150

    def __post_init__(self) -> None:
        # A payload must always have room for its header and one full section, or splitting
        # could never finish.
        if self.slack_blocks < 2:
            raise ValueError("slack_blocks must leave room for a header and one section")
        if self.slack_payload_chars < self.slack_header_chars + self.slack_section_chars:
            raise ValueError("slack_payload_chars must hold a header and a full section")
        if self.slack_text_chars < self.slack_payload_chars:
            raise ValueError("slack_text_chars must hold a whole payload's text")
