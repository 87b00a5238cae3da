"""A project's review-media settings: `config["review"]`, checked when it is set.

    {"review": {"proxy_height": 1080, "thumbnail_height": 180,
                "ocio": {"config": "/studio/ocio/config.ocio", "from": "ACEScg",
                         "display": "sRGB - Display", "view": "ACES 1.0 - SDR Video"}}}

Every key is optional. Without `ocio`, EXR frames (scene-linear by convention) are shown
through the default display transform, linear Rec.709 -> sRGB (OpenImageIO's built-in
colour configuration); other image formats and movies are taken as display-ready.
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import Field, ValidationError, model_validator

from bifrost_core.errors import InvalidInput
from bifrost_core.schemas import InputSchema

# Even heights: H.264 in yuv420p needs even dimensions. 4320 is 8K UHD.
MIN_HEIGHT = 64
MAX_HEIGHT = 4320
ProxyHeight = Annotated[int, Field(ge=MIN_HEIGHT, le=MAX_HEIGHT, multiple_of=2)]
Name = Annotated[str, Field(min_length=1, max_length=256)]

DEFAULT_FROM = "linear"
DEFAULT_TO = "sRGB"


class OcioSettings(InputSchema):
    """An OCIO config of the project's: frames are converted `from` a colour space to a
    display and view (or to the colour space `to`), by OpenImageIO."""

    config: Annotated[str, Field(min_length=1, max_length=4096)]
    from_space: Name = Field(alias="from")
    display: Name | None = None
    view: Name | None = None
    to: Name | None = None

    @model_validator(mode="after")
    def _target(self) -> Self:
        if (self.display is None) != (self.view is None):
            raise ValueError("give both display and view, or neither")
        if (self.display is None) == (self.to is None):
            raise ValueError("give either display and view, or to")
        return self


class ReviewSettings(InputSchema):
    proxy_height: ProxyHeight = 1080
    thumbnail_height: Annotated[int, Field(ge=32, le=1080, multiple_of=2)] = 180
    ocio: OcioSettings | None = None


def review_settings(config: dict[str, Any] | None) -> ReviewSettings:
    """The settings of a project's config (InvalidInput naming the key if they are wrong:
    `review.proxy_height: ...`)."""
    try:
        return ReviewSettings.model_validate((config or {}).get("review") or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidInput(
            f"review.{where}: {first['msg']}" if where else f"review: {first['msg']}"
        ) from None
