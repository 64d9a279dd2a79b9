"""Messages the connection worker posts to the app (frames and state arrive on the UI's turn)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from .client import ConnectionState


@dataclass
class ServerFrame(Message):
    frame: dict


@dataclass
class ConnectionChanged(Message):
    state: ConnectionState
