"""The tiered review over the Anthropic API: Haiku reads everything, Sonnet gets what Haiku flags.

The routing decisions are :class:`review_router.ReviewRouter`'s; the requests are
:mod:`review_requests`'s; this module only streams them, in order, and degrades when a tier
fails: Haiku down means Sonnet reviews the whole document; Sonnet down means Haiku's surface
findings only; both down means the offline rules. The review always ends with one ``ReviewDone``
carrying each tier's model, usage, cost and status.

Sonnet's answers are remembered per passage: on a re-review, a passage whose text and Haiku
findings are what Sonnet already checked (the writer edited elsewhere) replays the earlier
answer, and only the passages that changed are sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable

from ..config import REVIEW_TIERS, Settings
from ..pricing import Usage, cost_usd
from ..providers.base import Final, ProviderError, ProviderErrorKind
from .findings import (
    FindingsScanner,
    ReviewDelta,
    ReviewDone,
    ReviewEvent,
    TierReport,
)
from .requests import FINDINGS_SCHEMA as REVIEW_SCHEMA
from .requests import (
    REVIEW_SYSTEM,
    TRIAGE_SCHEMA,
    TRIAGE_SYSTEM,
    VERIFY_SCHEMA,
    VERIFY_SYSTEM,
    DocumentBases,
    document_blocks,
    tier_params,
    verify_blocks,
)
from .router import ReviewRouter, VerifyPlan
from .rules import rule_findings

# Failures a review degrades around (the other tier can still answer). A refused key or a
# request the API rejects is the same for both tiers: reported, not degraded around.
TRANSIENT = frozenset(
    {
        ProviderErrorKind.RATE_LIMITED,
        ProviderErrorKind.OVERLOADED,
        ProviderErrorKind.TIMEOUT,
        ProviderErrorKind.NETWORK,
        ProviderErrorKind.INTERNAL,
    }
)
_DEFAULT_DOCUMENT = "default"


def _cost(model: str, usage: Usage) -> float:
    try:
        return cost_usd(model, usage)
    except KeyError:
        return 0.0


class _Stage:
    """One request's bookkeeping: its report, the raw keyed objects it returned, and (while it
    streams) its request and the text so far, to estimate its cost if it is cut short."""

    def __init__(self, tier: str, model: str) -> None:
        self.tier = tier
        self.model = model
        self.started = time.monotonic()
        self.report = TierReport(tier, model, status="skipped")
        self.objects: list[tuple[str, dict]] = []
        self.params: dict | None = None  # set when its request goes out
        self.streamed: list[str] = []
        self.meter: dict = {}  # the usage message_start reported (stream_messages)

    @property
    def in_flight(self) -> bool:
        return self.params is not None and self.report.status == "skipped"

    def finish(
        self, status: str, usage: Usage | None = None, model: str = "", error: str = ""
    ) -> None:
        model = model or self.model
        usage = usage or Usage()
        self.report = TierReport(
            self.tier,
            model,
            status=status,
            usage=usage,
            cost_usd=_cost(model, usage),
            latency_ms=(time.monotonic() - self.started) * 1000,
            error=error,
        )


class TieredReviewer:
    """Findings from Haiku and Sonnet (``tier`` ``auto``), or from one of them alone."""

    name = "anthropic"

    def __init__(self, settings: Settings, *, client=None) -> None:
        from ..providers.anthropic import make_client

        self.settings = settings
        self.model = settings.review_model
        self.triage_model = settings.review_triage_model
        self.tier = settings.review_tier if settings.review_tier in REVIEW_TIERS else "auto"
        self._own_client = client is None
        self.client = client or make_client(
            settings,
            timeout=settings.review_timeout_s,
            connect_timeout=max(settings.suggest_connect_timeout_s, 5.0),
            max_retries=1,  # a tier that keeps failing is degraded around, not waited for
        )
        self.bases = DocumentBases()
        # Sonnet's answer per checked passage (see _verify), and which documents used each one
        self._windows: OrderedDict[str, list[tuple[str, dict]]] = OrderedDict()
        self._window_users: dict[str, set[str]] = {}
        self._unbooked: dict[str, list[TierReport]] = {}  # document -> requests cut short

    # -- one request -----------------------------------------------------------------------------

    async def _run(
        self, stage: _Stage, params: dict, on_object: Callable[[str, dict], list]
    ) -> AsyncIterator[ReviewEvent]:
        """Stream ``params``; hand each completed object to ``on_object`` and yield its events.
        Raises ProviderError (after the events of what did arrive)."""
        from ..providers.anthropic import stream_messages

        scanner = FindingsScanner()
        final: Final | None = None
        stage.params = params
        stream = stream_messages(self.client, params, provider=self.name, meter=stage.meter)
        try:
            async for event in stream:
                if isinstance(event, Final):
                    final = event
                    continue
                stage.streamed.append(event.text)
                yield ReviewDelta(event.text)
                for name, obj in scanner.feed_keyed(event.text):
                    stage.objects.append((name, obj))
                    for ev in on_object(name, obj):
                        yield ev
        except ProviderError as err:
            stage.finish("failed", error=f"{err.kind.value}: {err}")
            raise
        finally:
            await stream.aclose()
        if not scanner.saw_root and scanner.text.strip():
            err = ProviderError(ProviderErrorKind.INTERNAL, "the review reply was not JSON")
            stage.finish("failed", error=str(err))
            raise err
        assert final is not None
        stage.finish("ok", final.usage, final.model or stage.model)

    def _window_key(self, passage: str, items: list[dict]) -> str:
        stripped = [{k: v for k, v in item.items() if k != "id"} for item in items]
        blob = json.dumps([self.model, passage, stripped], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    async def _verify(
        self,
        stage: _Stage,
        plan: VerifyPlan,
        on_object: Callable[[str, dict], list],
        document: str = _DEFAULT_DOCUMENT,
    ) -> AsyncIterator[ReviewEvent]:
        """Sonnet's check of ``plan``: remembered passages replayed, the others sent."""
        todo: dict[int, str] = {}
        for w, passage in enumerate(plan.passages):
            items = plan.items_in(w)
            key = self._window_key(passage, items)
            remembered = self._windows.get(key)
            if remembered is None:
                todo[w] = key
                continue
            self._windows.move_to_end(key)
            self._window_users.setdefault(key, set()).add(document)
            for name, obj in remembered:
                if name == "verdicts":  # remembered by position within the passage
                    obj = dict(obj, id=items[obj["id"]]["id"])
                for ev in on_object(name, obj):
                    yield ev
        if not todo:
            stage.finish("reused")
            return
        sub = plan.subset(list(todo))
        stable, changing = verify_blocks(sub.passages, sub.items, sub.shown)
        params = tier_params(
            model=self.model,
            max_tokens=self.settings.review_max_tokens,
            system=VERIFY_SYSTEM,
            stable=stable,
            changing=changing,
            schema=VERIFY_SCHEMA,
        )
        async with contextlib.aclosing(self._run(stage, params, on_object)) as events:
            async for ev in events:
                yield ev
        answers: dict[int, list[tuple[str, dict]]] = {w: [] for w in todo}
        position = {item["id"]: (w, k) for w in todo for k, item in enumerate(plan.items_in(w))}
        for name, obj in stage.objects:
            if name == "verdicts" and obj.get("id") in position:
                w, k = position[obj["id"]]
                answers[w].append((name, dict(obj, id=k)))
            elif name == "findings":
                quote = obj.get("quote")
                w = next((w for w in todo if quote and quote in plan.passages[w]), None)
                if w is not None:
                    answers[w].append((name, obj))
        for w, key in todo.items():
            self._windows[key] = answers[w]
            self._window_users.setdefault(key, set()).add(document)
        while len(self._windows) > 1024:
            key, _ = self._windows.popitem(last=False)
            self._window_users.pop(key, None)

    def _whole_document(self, model: str, system: str, schema: dict, based) -> dict:
        stable, changing = document_blocks(based.base, based.edits)
        return tier_params(
            model=model,
            max_tokens=self.settings.review_max_tokens,
            system=system,
            stable=stable,
            changing=changing,
            schema=schema,
        )

    def forget(self, document: str) -> None:
        """``document``'s connection closed: drop the text it was last reviewed as and Sonnet's
        remembered answers (which quote it) that no other document used, so no writer's draft
        stays in this process after they leave."""
        self.bases.forget(document)
        for key, users in list(self._window_users.items()):
            users.discard(document)
            if not users:
                del self._window_users[key]
                self._windows.pop(key, None)

    # -- the review ------------------------------------------------------------------------------

    async def review(
        self, text: str, *, tier: str | None = None, document: str | None = None
    ) -> AsyncIterator[ReviewEvent]:
        stages: list[_Stage] = []
        try:
            async with contextlib.aclosing(self._stages(text, tier, document, stages)) as events:
                async for ev in events:
                    yield ev
        except (asyncio.CancelledError, GeneratorExit):
            self._cut_short(stages, document or _DEFAULT_DOCUMENT)
            raise

    def _cut_short(self, stages: list[_Stage], document: str) -> None:
        """The review was cancelled (the writer, a closed connection, shutdown) while a request
        streamed: the API bills what it read and wrote all the same, so its estimate waits in
        :meth:`take_unbooked` for the server's ledger (a review cancelled just before its end
        cost the writer nothing before, however long the document)."""
        from ..providers.anthropic import estimated_usage

        for stage in stages:
            if stage.in_flight:
                streamed = "".join(stage.streamed)
                usage = estimated_usage(stage.params, streamed, stage.meter.get("usage"))
                stage.finish("cancelled", usage)
                self._unbooked.setdefault(document, []).append(stage.report)

    def take_unbooked(self, document: str | None = None) -> list[TierReport]:
        """The reports of ``document``'s requests that were cut short, once (see _cut_short)."""
        return self._unbooked.pop(document or _DEFAULT_DOCUMENT, [])

    async def _stages(
        self, text: str, tier: str | None, document: str | None, stages: list[_Stage]
    ) -> AsyncIterator[ReviewEvent]:
        tier = tier if tier in REVIEW_TIERS else self.tier
        started = time.monotonic()
        router = ReviewRouter(text, mode=tier)
        based = self.bases.prepare(document or _DEFAULT_DOCUMENT, text)
        haiku_failed = sonnet_failed = False

        def haiku_objects(name: str, obj: dict) -> list:
            if name == "flags":
                router.flag(obj)
                return []
            return router.from_haiku(obj) if name == "findings" else []

        def sonnet_objects(name: str, obj: dict) -> list:
            if name == "verdicts":
                return router.verdict(obj)
            return router.from_sonnet(obj) if name == "findings" else []

        if tier in ("auto", "haiku"):
            triage = tier == "auto"
            stage = _Stage("haiku", self.triage_model)
            stages.append(stage)
            params = self._whole_document(
                self.triage_model,
                TRIAGE_SYSTEM if triage else REVIEW_SYSTEM,
                TRIAGE_SCHEMA if triage else REVIEW_SCHEMA,
                based,
            )
            try:
                async with contextlib.aclosing(self._run(stage, params, haiku_objects)) as events:
                    async for ev in events:
                        yield ev
            except ProviderError as err:
                if tier == "haiku" or err.kind not in TRANSIENT:
                    raise
                haiku_failed = True
                router.haiku_failed(err.kind.value)
        if tier == "sonnet" or haiku_failed:
            stage = _Stage("sonnet", self.model)
            stages.append(stage)
            params = self._whole_document(self.model, REVIEW_SYSTEM, REVIEW_SCHEMA, based)
            try:
                async with contextlib.aclosing(self._run(stage, params, sonnet_objects)) as events:
                    async for ev in events:
                        yield ev
            except ProviderError as err:
                if tier == "sonnet" or err.kind not in TRANSIENT:
                    raise
                sonnet_failed = True
                router.notes.append(f"Sonnet failed too ({err.kind.value}).")
        elif tier == "auto":
            stage = _Stage("sonnet", self.model)
            stages.append(stage)
            plan = router.plan()
            if plan is not None:
                try:
                    verify = self._verify(
                        stage, plan, sonnet_objects, document or _DEFAULT_DOCUMENT
                    )
                    async with contextlib.aclosing(verify) as events:
                        async for ev in events:
                            yield ev
                    router.sonnet_done()
                except ProviderError as err:
                    if err.kind not in TRANSIENT:
                        raise
                    router.sonnet_failed(err.kind.value)
        if haiku_failed and sonnet_failed:
            router.notes.append("Offline rules only.")
            for raw in rule_findings(text):
                for ev in router.from_offline(raw):
                    yield ev
        yield self._done(router, stages, started)

    def _done(self, router: ReviewRouter, stages: list[_Stage], started: float) -> ReviewDone:
        reports = tuple(s.report for s in stages)
        usage = Usage()
        for r in reports:
            usage = usage + r.usage
        used = [r.model for r in reports if r.status in ("ok", "reused")]
        return ReviewDone(
            findings=len(router.shown),
            model="+".join(dict.fromkeys(used)) or "offline-rules",
            usage=usage,
            cost_usd=sum(r.cost_usd for r in reports),
            latency_ms=(time.monotonic() - started) * 1000,
            tiers=reports,
            note=router.note,
            withheld=router.withheld,
        )

    async def aclose(self) -> None:
        if self._own_client:
            try:
                await self.client.close()
            except Exception:
                pass
