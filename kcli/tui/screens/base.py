"""The dashboard's base screens: ``kapp`` is the running app, typed, defined once."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar, cast

from textual.message_pump import MessagePump
from textual.screen import ModalScreen, Screen

if TYPE_CHECKING:
    from kcli.tui.app import KcliApp

ResultT = TypeVar("ResultT")


class KcliNode(MessagePump):
    """Mixed into the dashboard's screens (and the main screen's views) for :attr:`kapp`."""

    @property
    def kapp(self) -> KcliApp:
        """The app, typed."""
        return cast("KcliApp", self.app)


class KcliScreen(KcliNode, Screen[ResultT]):
    """A screen of the dashboard."""


class KcliModalScreen(KcliNode, ModalScreen[ResultT]):
    """A dialog of the dashboard."""
