"""Settings that were frame counts tuned at 30 fps and became seconds (or per second): an old
name in a config is an error that names the new one, never silently ignored or misread."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, model_validator

__all__ = ["RefusesRenamed"]


class RefusesRenamed(BaseModel):
    """A config section whose `RENAMED` maps each old name to what it is now."""

    RENAMED: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _refuse_renamed(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for old, now in cls.RENAMED.items():
                if old in data:
                    raise ValueError(f"'{old}' is now {now}")
        return data
