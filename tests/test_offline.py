"""The offline tier: which engine answers, and the fallback to the statistical engine."""

from __future__ import annotations

import threading

import pytest

from assistant.config import Settings
from assistant.providers import offline as offline_mod
from assistant.providers.base import CompletionRequest, Final, Provider, TextChunk
from assistant.providers.local import LocalModel, LocalModelProvider, available, shared_model
from assistant.providers.offline import OfflineProvider, make_offline_provider
from assistant.providers.statistical import StatisticalProvider, lexicon

DOC = "Please send the quarterly report to Maria. Please send the quarterly report today. "

needs_model = pytest.mark.skipif(
    not available(), reason="xllamacpp / Gemma weights missing (the local extra)"
)


@pytest.fixture(scope="module", autouse=True)
def _lexicon_loaded():
    lexicon(block=True)


async def collect(provider, prefix: str, suffix: str = "", document_id: str = "default"):
    request = CompletionRequest(prefix, suffix, 12, document_id=document_id)
    events = [e async for e in provider.stream(request)]
    final = events[-1]
    assert isinstance(final, Final) and final.source == "offline"
    assert all(isinstance(e, TextChunk) for e in events[:-1])
    return "".join(e.text for e in events[:-1]), final


def test_statistical_when_forced():
    p = make_offline_provider(Settings(offline="statistical"))
    assert isinstance(p, StatisticalProvider) and isinstance(p, Provider)


def test_local_when_asked_and_an_error_when_missing(monkeypatch):
    if available():
        assert isinstance(make_offline_provider(Settings(offline="local")), LocalModelProvider)
    monkeypatch.setattr(offline_mod, "available", lambda: False)
    with pytest.raises(ValueError, match="local"):
        make_offline_provider(Settings(offline="local"))


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="offline must be one of"):
        make_offline_provider(Settings(offline="gpt"))


def test_auto_without_the_model_is_statistical(monkeypatch):
    monkeypatch.setattr(offline_mod, "available", lambda: False)
    p = make_offline_provider(Settings())
    assert isinstance(p, OfflineProvider) and isinstance(p, Provider)
    assert p.name == "offline" and p.model == "offline-statistical"


async def test_statistical_only_offline_provider_answers_from_the_document():
    p = OfflineProvider(use_local=False)
    text, final = await collect(p, DOC + "Please send the ")
    assert text == "quarterly report"
    assert final.provider == "statistical" and final.model == "offline-statistical"


class BrokenModel(LocalModel):
    """A loaded model whose generation fails: the tier must answer anyway."""

    @property
    def loaded(self) -> bool:
        return True

    def complete(self, *args, **kwargs):
        raise RuntimeError("llama exploded")


async def test_falls_back_when_the_local_model_fails():
    p = OfflineProvider(local=BrokenModel(), use_local=True)
    text, final = await collect(p, DOC + "Please send the ")
    assert (text, final.provider) == ("quarterly report", "statistical")


@pytest.fixture(scope="module")
def loaded_model() -> LocalModel:
    if not available():
        pytest.skip("xllamacpp / Gemma weights missing (the local extra)")
    model = shared_model()
    model.load()
    return model


@pytest.mark.local_model
@needs_model
async def test_auto_picks_the_local_model_when_available(loaded_model):
    p = make_offline_provider(Settings(offline="auto"))
    assert isinstance(p, OfflineProvider) and p.model == "gemma-3-270m"
    text, final = await collect(p, "The quick brown fox jumps over the")
    assert text.strip()
    assert (final.provider, final.model) == ("local", "gemma-3-270m")


@pytest.mark.local_model
@needs_model
async def test_falls_back_to_statistical_while_every_slot_is_busy(loaded_model):
    p = OfflineProvider()
    freed = []
    p.on_free(lambda: freed.append(True))
    table = loaded_model.table
    held = [table.acquire(f"other-{i}", wait=True) for i in range(loaded_model.slots)]
    try:  # every slot is generating for other documents
        text, final = await collect(p, DOC + "Please send the ")
    finally:
        for slot in held:
            loaded_model.release(slot)
    assert (text, final.provider) == ("quarterly report", "statistical")
    assert final.retry_when_free  # the runtime may ask again...
    assert freed  # ...and is told when a slot is given back
    _, final = await collect(p, DOC + "Please send the ")
    assert final.provider == "local" and not final.retry_when_free
    await p.aclose()


async def test_answers_while_loading_say_to_ask_again_and_the_load_says_when():
    gate = threading.Event()

    class NeverLoaded(LocalModel):
        def load(self):
            gate.wait(5)
            raise RuntimeError("no weights here")

    p = OfflineProvider(local=NeverLoaded(slots=1), use_local=True)
    freed = []
    p.on_free(lambda: freed.append(True))
    text, final = await collect(p, DOC + "Please send the ")  # while it loads
    assert (text, final.provider, final.retry_when_free) == (
        "quarterly report",
        "statistical",
        True,
    )
    assert not freed
    gate.set()
    p._loader.join(5)
    assert freed and p.local is None  # gave up: the runtime asks again and gets the engine
    _, final = await collect(p, DOC + "Please send the ")
    assert not final.retry_when_free


@pytest.mark.local_model
@needs_model
async def test_falls_back_when_the_model_says_nothing_usable(loaded_model):
    p = OfflineProvider()
    # the cursor is inside a word: the model declines, the engine answers (with nothing)
    text, final = await collect(p, DOC + "Please send the quar", "terly")
    assert (text, final.provider) == ("", "statistical")


@pytest.mark.local_model
@needs_model
async def test_warm_prefills_the_local_cache(loaded_model):
    p = OfflineProvider()
    doc = "Status report for the operations team. All systems ran normally this week. " * 4
    await p.warm(doc, "ops")
    _, final = await collect(p, doc + "Next ", document_id="ops")  # the document's own slot
    assert final.provider == "local"
    assert final.usage.cache_read_input_tokens > final.usage.input_tokens
