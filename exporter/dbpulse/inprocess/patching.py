"""Instance-attribute wrappers that can be taken out again.

dbpulse wraps a few methods on one engine's own objects (its dialect and pool) by
setting an instance attribute that shadows the class method; nothing on a class is ever
touched, so other engines are unaffected. ``restore`` deletes the shadowing attribute.
If another library wrapped the same attribute on top of ours, deleting ours would remove
theirs too; instead our wrapper is switched off and passes calls straight through.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["Patcher", "Switch"]

_MARK = "_dbpulse_patcher"


class Switch:
    """A flag the wrappers read on every call (one attribute load)."""

    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on = True


class Patcher:
    """Records every wrapper it installs so that ``restore`` can undo exactly those."""

    def __init__(self) -> None:
        self.switch = Switch()
        # Weak on both sides: a wrapper holds its original bound method, and so the
        # object; keeping wrappers here would keep engines (via their pools) alive.
        self._installed: list[tuple[weakref.ref[Any], str, weakref.ref[Any]]] = []

    def wrap(self, obj: Any, attr: str, make: Callable[[Any, Switch], Any]) -> None:
        """Replace ``obj.attr`` with ``make(original, switch)`` unless already ours."""
        original = getattr(obj, attr)
        if getattr(original, _MARK, None) is self:
            return
        wrapper = make(original, self.switch)
        setattr(wrapper, _MARK, self)
        setattr(obj, attr, wrapper)
        self._installed.append((weakref.ref(obj), attr, weakref.ref(wrapper)))

    def restore(self) -> None:
        """Remove every wrapper (on objects still alive); switch off any left in place."""
        self.switch.on = False
        for ref, attr, wrapper_ref in self._installed:
            obj = ref()
            wrapper = wrapper_ref()
            if obj is not None and wrapper is not None and obj.__dict__.get(attr) is wrapper:
                del obj.__dict__[attr]
        self._installed.clear()

    def installed(self) -> list[tuple[Any, str]]:
        """(object, attribute) for each live wrapper, for tests and debugging."""
        return [(ref(), attr) for ref, attr, _ in self._installed if ref() is not None]
