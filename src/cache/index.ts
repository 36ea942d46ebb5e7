/**
 * The cache component's public interface: per-account values kept exact in every instance by an
 * acknowledged invalidation protocol (docs/cache.md), and the change log writers feed it.
 */
export { AccountCache } from './account-cache';
export { cacheJobs } from './cache.jobs';
export { type RecordedChange, recordChanges } from './changes.repository';
export { type Announced, CacheCoherence, type Invalidation } from './coherence';
