"""Build step that puts the JS client and the chat demo into the wheel.

All metadata lives in pyproject.toml. The files a hub serves over HTTP are
authored outside the Python packages (js-client/, examples/chat/); build_py
copies them into hub/static/ of the build, so the wheel carries them and the
source tree keeps one copy. Editable installs skip the copy: the hub then reads
them from the checkout (hub/assets.py).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _assets() -> ModuleType:
    # Loaded by path: importing the hub package would need its dependencies.
    spec = importlib.util.spec_from_file_location("_wshub_assets", ROOT / "hub" / "assets.py")
    if spec is None or spec.loader is None:
        raise ImportError("cannot load hub/assets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildPyWithAssets(build_py):
    """build_py, plus the served client files and the demo under hub/static/."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        for source, target in self._asset_pairs():
            self.mkpath(str(target.parent))
            self.copy_file(str(source), str(target))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = list(super().get_outputs(include_bytecode))
        if not self.editable_mode:
            outputs += [str(target) for _, target in self._asset_pairs()]
        return outputs

    def _asset_pairs(self) -> list[tuple[Path, Path]]:
        assets = _assets()
        static = Path(self.build_lib) / "hub" / assets.PACKAGED
        client_source = ROOT / assets.CLIENT_SOURCE
        demo_source = ROOT / assets.DEMO_SOURCE
        pairs = [
            (client_source / name, static / assets.PACKAGED_CLIENT / name)
            for name in assets.CLIENT_FILES
        ]
        pairs += [
            (path, static / assets.PACKAGED_DEMO / path.relative_to(demo_source))
            for path in assets.demo_files(demo_source)
        ]
        missing = [str(source) for source, _ in pairs if not source.is_file()]
        if not (demo_source / "index.html").is_file():
            missing.append(str(demo_source / "index.html"))
        if missing:
            raise FileNotFoundError(f"files the wheel must carry are missing: {missing}")
        return pairs


setup(cmdclass={"build_py": BuildPyWithAssets})
