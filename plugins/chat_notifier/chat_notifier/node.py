"""Chat notifier plugin: the node model (source of truth) and its derived spec."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import StringConstraints

from sdk import (
    BaseNodeData,
    DisplayOptions,
    GraphConstraints,
    IntegrationNodeRegistration,
    NodeCategory,
    NodeExample,
    PropertyType,
    build_spec,
    node_spec,
    spec_field,
)

TYPE_NAME = "chat_notifier"


class NotifyWhen(StrEnum):
    always = "always"
    qa_failed = "qa_failed"


@node_spec(
    name=TYPE_NAME,
    display_name="Chat notification",
    description="Post a call summary to a chat channel through its incoming-webhook URL.",
    category=NodeCategory.integration,
    icon="MessageSquare",
    graph_constraints=GraphConstraints(
        min_incoming=0, max_incoming=0, min_outgoing=0, max_outgoing=0
    ),
    property_order=("name", "webhook_url", "notify_when", "message_prefix"),
    field_overrides={
        "message_prefix": {"display_options": DisplayOptions(show={"enabled": [True]})}
    },
    examples=[
        NodeExample(
            name="Every call",
            data={
                "name": "Support channel",
                "webhook_url": "http://127.0.0.1:9/hooks/T000/B000/abcdefgh",
                "notify_when": "always",
            },
        )
    ],
)
class ChatNotifierNodeData(BaseNodeData):
    """Where to post, and when."""

    webhook_url: Annotated[str, StringConstraints(pattern=r"^https?://")] = spec_field(
        ...,
        ui_type=PropertyType.url,
        description="The channel's incoming-webhook URL; it is a secret and is masked on read.",
    )
    notify_when: NotifyWhen = spec_field(
        NotifyWhen.always, description="Post after every call, or only when QA failed."
    )
    message_prefix: Annotated[str, StringConstraints(max_length=200)] = spec_field(
        "Call finished", description="First words of the posted message."
    )
    enabled: bool = spec_field(True, description="Turn notifications off without deleting.")


SPEC = build_spec(ChatNotifierNodeData)
NODE = IntegrationNodeRegistration(
    type_name=TYPE_NAME,
    data_model=ChatNotifierNodeData,
    node_spec=SPEC,
    sensitive_fields=("webhook_url",),
)
