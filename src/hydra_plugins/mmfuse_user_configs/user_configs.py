"""`mmfuse train --config-dir ./conf` (or `hydra.searchpath=[file://./conf]`): the user's folders come first.

Hydra searches its main config folder first and puts `--config-dir` and `hydra.searchpath` after it; a
SearchPathPlugin is Hydra's public way to order the search path before the primary config is read. It acts only
on a search path whose main folder is mmfuse's, and only when `mmfuse` named user folders (MMFUSE_USER_CONFIG_DIRS).
"""
from __future__ import annotations

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class MmfuseUserConfigs(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from mmfuse.configs import put_user_folders_first

        put_user_folders_first(search_path)
