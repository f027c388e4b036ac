"""Serve JavaScript that ships inside installed Python packages (plotly.js) as our own static files,
so the console never loads anything from a CDN."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

# url path under /static/ -> (python package, file inside it)
PACKAGED = {
    "vendor/plotly.min.js": ("plotly", "package_data/plotly.min.js"),
}


def _package_file(package: str, relative: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    return path if path.exists() else None


class PackagedAssetsFinder(BaseFinder):
    def check(self, **kwargs):
        return []

    def find(self, path, find_all=False, **kwargs):
        if path in PACKAGED:
            found = _package_file(*PACKAGED[path])
            if found is not None:
                return [str(found)] if find_all else str(found)
        return [] if find_all else None

    def list(self, ignore_patterns):
        for url_path, (package, relative) in PACKAGED.items():
            found = _package_file(package, relative)
            if found is None:
                continue
            storage = FileSystemStorage(location=str(found.parent))
            storage.prefix = str(Path(url_path).parent)
            yield found.name, storage
