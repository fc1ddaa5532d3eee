"""Conversations of the library: browse, read, favourite and delete (owner only)."""

from __future__ import annotations

import builtins

from simulator.db.store import ConversationFilter, Store
from simulator.domain import Conversation, Message
from simulator.domain.errors import NotFoundError
from simulator.services.ownership import is_owner, require_owner, server_permission


class ConversationService:
    def __init__(self, store: Store, user: str) -> None:
        self.store = store
        self.user = user

    def can_delete(self, conversation: Conversation) -> bool:
        """Whether the current user may delete it (for enabling UI actions)."""
        return is_owner(conversation.owner, self.user)

    async def list(
        self, flt: ConversationFilter | None = None, *, brief: bool = False
    ) -> builtins.list[Conversation]:
        """Conversations passing ``flt``, read in pages converted off the event loop;
        ``brief`` leaves out the prompts (``simulator.db.store.PROMPT_FIELDS``)."""
        return await self.store.conversations.list(flt, brief=brief)

    async def get(self, conversation_id: str) -> Conversation:
        conversation = await self.store.conversations.get(conversation_id)
        if conversation is None:
            raise NotFoundError(f"No conversation {conversation_id} (it may have been deleted).")
        return conversation

    async def messages(self, conversation_id: str) -> builtins.list[Message]:
        """A transcript: the conversation's messages in seq order (one range of the ``_id``
        index, whatever the size of the database)."""
        return (await self.transcript(conversation_id))[1]

    async def transcript(self, conversation_id: str) -> tuple[Conversation, builtins.list[Message]]:
        """The conversation as stored (prompts included) and its messages in seq order."""
        conversation = await self.get(conversation_id)
        return conversation, await self.store.messages.list(conversation_id)

    async def delete(self, conversation_id: str) -> None:
        """Delete a conversation and its messages: only whoever ran it may."""
        conversation = await self.get(conversation_id)
        require_owner(conversation.owner, self.user, "delete", f"conversation {conversation.id}")
        with server_permission("delete", f"conversation {conversation.id}"):
            await self.store.conversations.delete(conversation_id)

    async def toggle_favourite(self, conversation_id: str) -> Conversation:
        """Mark or unmark a conversation as favourite (its owner's, not the experiment's)."""
        conversation = await self.get(conversation_id)
        require_owner(
            conversation.owner,
            self.user,
            "mark as favourite",
            f"conversation {conversation.id}",
        )
        value = not conversation.favourite
        with server_permission("mark as favourite", f"conversation {conversation.id}"):
            await self.store.conversations.set_fields(conversation_id, favourite=value)
        return conversation.model_copy(update={"favourite": value})
