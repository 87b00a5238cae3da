from __future__ import annotations

from bifrost_core.assets.models import Asset, AssetType, Casting
from bifrost_core.db.repository import Repository
from bifrost_core.errors import NotFound


class AssetTypeRepository(Repository[AssetType]):
    model = AssetType
    label = "asset type"


class AssetRepository(Repository[Asset]):
    model = Asset
    label = "asset"

    def by_code(self, project_id: int, code: str) -> Asset:
        asset = self.first(Asset.project_id == project_id, Asset.code == code)
        if asset is None:
            raise NotFound(f"asset {code!r} not found")
        return asset


class CastingRepository(Repository[Casting]):
    model = Casting
    label = "casting"
