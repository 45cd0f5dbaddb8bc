import type { Metrics } from '../metrics/index.js';
import type { Candidate, StoredSubscription, SubscriptionStore } from './store.js';
import { type ActiveSubscription, activate, type Subscription } from './subscription.js';

export interface SubscriptionTableOptions {
  /** Most (project, event type) entries kept in process; 0 disables the cache. */
  cacheMaxEntries: number;
  /** Entry lifetime, a safety net behind invalidation. */
  cacheTtlMs: number;
}

export interface CandidateKey {
  projectId: string;
  eventType: string;
}

interface Entry {
  subs: ActiveSubscription[];
  expiresAt: number;
}

export function candidateKey(projectId: string, eventType: string): string {
  return `${projectId}\n${eventType}`;
}

/**
 * The subscription table as the hot path sees it: an in-process cache in front of the Redis store.
 * Changes invalidate the entries of the projects they touch (the syncer calls `invalidate`).
 */
export class SubscriptionTable {
  private readonly entries = new Map<string, Entry>();
  private readonly keysByProject = new Map<string, Set<string>>();
  // Compiled subscriptions by id, with the version (record position) they were compiled from.
  private readonly compiled = new Map<string, { version: string; active: ActiveSubscription }>();
  // Bumped on every invalidation: a fill that started before it must not store what it read.
  private generation = 0;

  constructor(
    private readonly store: SubscriptionStore,
    private readonly opts: SubscriptionTableOptions,
    private readonly metrics: Metrics,
  ) {}

  /** Candidates for each key (matching project and event type; company, enabled and filters are checked by the caller). */
  async candidates(keys: readonly CandidateKey[]): Promise<Map<string, ActiveSubscription[]>> {
    const out = new Map<string, ActiveSubscription[]>();
    const missing: CandidateKey[] = [];
    const now = Date.now();
    for (const k of keys) {
      const ck = candidateKey(k.projectId, k.eventType);
      if (out.has(ck)) continue;
      const e = this.entries.get(ck);
      if (e && e.expiresAt > now) {
        out.set(ck, e.subs);
      } else {
        out.set(ck, []);
        missing.push(k);
      }
    }
    this.metrics.cacheLookups.inc({ result: 'hit' }, out.size - missing.length);
    if (missing.length === 0) return out;
    this.metrics.cacheLookups.inc({ result: 'miss' }, missing.length);

    const generation = this.generation;
    const rows = await this.store.lookup(missing);
    const compiled = await this.compile(rows.flat());
    const store = generation === this.generation && this.opts.cacheMaxEntries > 0;
    missing.forEach((k, i) => {
      const subs: ActiveSubscription[] = [];
      for (const { id } of rows[i]!) {
        const active = compiled.get(id);
        if (active) subs.push(active);
      }
      const ck = candidateKey(k.projectId, k.eventType);
      out.set(ck, subs);
      if (store) this.remember(ck, k.projectId, subs, now);
    });
    return out;
  }

  /** The current subscription with this id, straight from Redis (retries re-read it before each attempt). */
  async current(id: string): Promise<ActiveSubscription | null> {
    const stored = await this.store.get(id);
    return stored === null ? null : this.activate(id, stored);
  }

  /**
   * The compiled subscription of each candidate that is live. A version compiled before costs
   * nothing; the others are read from their homes, in one round trip. A home may hold a later
   * version than the bucket that indexed it (its bucket step is on its way): when read, that later
   * one is used, and the caller checks it still has the event's project and type.
   */
  private async compile(candidates: readonly Candidate[]): Promise<Map<string, ActiveSubscription>> {
    const out = new Map<string, ActiveSubscription>();
    const unknown = new Set<string>();
    for (const { id, version } of candidates) {
      const hit = this.compiled.get(id);
      if (hit && hit.version === version) out.set(id, hit.active);
      else unknown.add(id);
    }
    if (unknown.size === 0) return out;
    const ids = [...unknown];
    const stored = await Promise.all(ids.map((id) => this.store.get(id)));
    ids.forEach((id, i) => {
      const one = stored[i];
      if (one) out.set(id, this.activate(id, one));
    });
    return out;
  }

  /** Drops every cached entry of these projects. */
  invalidate(projects: Iterable<string>): void {
    this.generation++;
    for (const p of projects) {
      const keys = this.keysByProject.get(p);
      if (!keys) continue;
      for (const k of keys) this.entries.delete(k);
      this.keysByProject.delete(p);
    }
  }

  /** Drops everything (after a rebuild of the table). */
  clear(): void {
    this.generation++;
    this.entries.clear();
    this.keysByProject.clear();
    this.compiled.clear();
  }

  private remember(ck: string, projectId: string, subs: ActiveSubscription[], now: number): void {
    if (this.entries.size >= this.opts.cacheMaxEntries) {
      // Evict the oldest insertion; cheap, and good enough for a working set that fits.
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(ck, { subs, expiresAt: now + this.opts.cacheTtlMs });
    const keys = this.keysByProject.get(projectId) ?? new Set<string>();
    this.keysByProject.set(projectId, keys);
    keys.add(ck);
  }

  private activate(id: string, { version, json }: StoredSubscription): ActiveSubscription {
    const hit = this.compiled.get(id);
    if (hit && hit.version === version) return hit.active;
    const active = activate(JSON.parse(json) as Subscription);
    if (active.problem) this.metrics.subscriptionsInvalid.inc({ reason: 'INVALID_FILTER' });
    if (this.compiled.size >= Math.max(1000, this.opts.cacheMaxEntries * 4)) this.compiled.clear();
    this.compiled.set(id, { version, active });
    return active;
  }
}
