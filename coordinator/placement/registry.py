"""A small name -> plugin registry shared by filters and weighers.

Plugins register themselves with a class decorator when their module is imported; the
package ``__init__`` imports every plugin module, so ``registry()`` is always complete.
Config switches plugins on and off by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

PluginT = TypeVar("PluginT")


@dataclass(frozen=True)
class PluginInfo(Generic[PluginT]):
    name: str
    plugin: type[PluginT]
    default_enabled: bool
    order: int  # pipeline position: lower runs first (cheap, very selective filters first)
    description: str


class Registry(Generic[PluginT]):
    """Plugins of one kind (filters or weighers), by name."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._plugins: dict[str, PluginInfo[PluginT]] = {}

    def register(
        self, name: str, *, order: int = 100, default_enabled: bool = True
    ) -> Callable[[type[PluginT]], type[PluginT]]:
        """Class decorator: make a plugin known under ``name``."""

        def decorate(cls: type[PluginT]) -> type[PluginT]:
            known = self._plugins.get(name)
            if known is not None and known.plugin is not cls:
                raise RuntimeError(f"{self.kind} {name!r} registered twice")
            setattr(cls, "name", name)  # noqa: B010 - plugins declare `name: ClassVar[str]`
            doc = (cls.__doc__ or "").strip().splitlines()
            self._plugins[name] = PluginInfo(
                name, cls, default_enabled, order, doc[0] if doc else ""
            )
            return cls

        return decorate

    def __iter__(self) -> Iterator[PluginInfo[PluginT]]:
        """Every plugin in pipeline order (then by name, so the order is stable)."""
        return iter(sorted(self._plugins.values(), key=lambda info: (info.order, info.name)))

    def __contains__(self, name: object) -> bool:
        return name in self._plugins

    def __getitem__(self, name: str) -> PluginInfo[PluginT]:
        return self._plugins[name]

    def names(self) -> tuple[str, ...]:
        return tuple(info.name for info in self)
