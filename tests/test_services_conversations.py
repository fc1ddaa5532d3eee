"""ConversationService on the real embedded server: reading, favourites, owner-only delete. Each
user's services come from the composition root (``services_as``)."""

from __future__ import annotations

import pytest

from simulator.domain.errors import NotFoundError, PermissionDeniedError
from tests.plugins.services import add_conversation


async def test_anyone_reads_conversations_and_messages(
    store, services_as, alices_experiment
) -> None:
    conv = await add_conversation(store, alices_experiment, "alice", messages=3)
    bob = (await services_as("bob")).conversations
    assert [c.id for c in await bob.list()] == [conv.id]
    assert [m.seq for m in await bob.messages(conv.id)] == [0, 1, 2]
    assert (await bob.get(conv.id)).owner == "alice"


async def test_only_the_owner_deletes_a_conversation(store, services_as, alices_experiment) -> None:
    conv = await add_conversation(store, alices_experiment, "alice")
    alice = (await services_as("alice")).conversations
    bob = (await services_as("bob")).conversations
    assert alice.can_delete(conv)
    assert not bob.can_delete(conv)
    with pytest.raises(PermissionDeniedError) as err:
        await bob.delete(conv.id)
    assert f"You (bob) cannot delete conversation {conv.id}: it is alice's" in str(err.value)
    assert len(await store.messages.list(conv.id)) == 2
    await alice.delete(conv.id)
    assert await store.conversations.get(conv.id) is None
    assert await store.messages.list(conv.id) == []


async def test_favourite_follows_the_conversation_owner_not_the_experiment_owner(
    store, services_as, alices_experiment
) -> None:
    # bob ran a conversation on alice's experiment: it is bob's to mark, not alice's
    conv = await add_conversation(store, alices_experiment, "bob")
    with pytest.raises(PermissionDeniedError):
        await (await services_as("alice")).conversations.toggle_favourite(conv.id)
    bob = (await services_as("bob")).conversations
    assert (await bob.toggle_favourite(conv.id)).favourite is True
    assert (await store.conversations.get(conv.id)).favourite is True


async def test_missing_conversation_is_not_found(services_as) -> None:
    with pytest.raises(NotFoundError, match="No conversation nope"):
        await (await services_as("alice")).conversations.messages("nope")
