/**
 * The last `capacity` keys seen, oldest forgotten first. A Set keeps insertion order, so eviction
 * is O(1) and the memory bound is exact.
 */
export class RecentKeys {
  private readonly keys = new Set<string>();

  /** @param capacity keys remembered (no default: the caller sizes it for what it de-duplicates) */
  constructor(private readonly capacity: number) {}

  /** True if `key` was seen among the last `capacity` keys; otherwise remembers it and returns false. */
  seen(key: string): boolean {
    if (this.keys.has(key)) return true;
    this.keys.add(key);
    if (this.keys.size > this.capacity) this.keys.delete(this.keys.values().next().value!);
    return false;
  }

  get size(): number {
    return this.keys.size;
  }
}
