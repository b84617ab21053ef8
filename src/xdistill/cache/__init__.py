"""The teacher-output cache: every teacher runs once over the target data."""

from xdistill.cache.extract import CacheSummary, CacheWarning, TeacherCache, cache_task, cached_outputs
from xdistill.cache.store import CachedOutputs, CacheStore

__all__ = ["CacheStore", "CacheSummary", "CacheWarning", "CachedOutputs", "TeacherCache", "cache_task", "cached_outputs"]

from xdistill.cache.config import CacheConfig  # noqa: E402

__all__ += ["CacheConfig"]
