/**
 * Per-key state (per card, per person) kept in a JetStream KV bucket and cached in memory by the
 * partition's owner. Values are JSON. Writes are compare-and-set on the key's revision
 * (Nats-Expected-Last-Subject-Sequence), published through the pipelined publisher, so a
 * batch's state is written with one round trip of pipelined publishes; a write that finds the
 * key changed by someone else fails the batch with TF_STATE_CONFLICT (the messages are
 * redelivered and the cache reloaded).
 */
import type { KV } from '@nats-io/kv';
import type { JsPublisher } from './publisher.js';
import { TapflowError } from '../domain/reasons.js';

interface Cached<T> {
  value: T | undefined;
  revision: number;
  dirty: boolean;
}

export class StateStore<T> {
  private readonly cache = new Map<string, Cached<T>>();
  /** Keys changed since the last flush (so a flush costs what changed, not what is cached). */
  private readonly dirty = new Set<string>();

  constructor(
    private readonly kv: KV,
    private readonly bucket: string,
    private readonly publisher: JsPublisher,
    /** Most keys kept in memory; clean entries beyond it are evicted oldest first. */
    private readonly maxCached = 200_000,
  ) {}

  /** Loads the keys not yet cached (in parallel). */
  async load(keys: Iterable<string>): Promise<void> {
    const missing = [...new Set(keys)].filter((k) => !this.cache.has(k));
    await Promise.all(
      missing.map(async (k) => {
        const e = await this.kv.get(k);
        const value = e && e.operation === 'PUT' && e.value.length > 0 ? (JSON.parse(new TextDecoder().decode(e.value)) as T) : undefined;
        this.cache.set(k, { value, revision: e?.revision ?? 0, dirty: false });
      }),
    );
  }

  get(key: string): T | undefined {
    return this.cache.get(key)?.value;
  }

  set(key: string, value: T): void {
    const c = this.cache.get(key);
    if (!c) throw new Error(`state for ${key} was not loaded before being set`);
    c.value = value;
    c.dirty = true;
    this.dirty.add(key);
  }

  /** Writes every changed key; resolves when all are durable. */
  async flush(): Promise<void> {
    const writes: Promise<void>[] = [];
    const enc = new TextEncoder();
    for (const key of this.dirty) {
      const c = this.cache.get(key);
      if (!c || !c.dirty) continue;
      const data = enc.encode(JSON.stringify(c.value));
      writes.push(
        this.publisher
          .publish(`$KV.${this.bucket}.${key}`, data, undefined, { expectLastSubjectSeq: c.revision })
          .then((ack) => {
            if (ack.duplicate) throw new TapflowError('TF_STATE_CONFLICT', `state write of ${key} at revision ${c.revision} was a duplicate`);
            c.revision = ack.seq;
            c.dirty = false;
          }),
      );
    }
    this.dirty.clear();
    const results = await Promise.allSettled(writes);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) {
      // Our view may be stale: forget it all and reload on the next batch.
      this.clear();
      throw (failed as PromiseRejectedResult).reason;
    }
    this.evict();
  }

  /** The cached keys with a value. */
  *entries(): IterableIterator<[string, T]> {
    for (const [k, c] of this.cache) if (c.value !== undefined) yield [k, c.value];
  }

  /** Drops the cache (on losing the partition or after a failure). */
  clear(): void {
    this.cache.clear();
    this.dirty.clear();
  }

  private evict(): void {
    if (this.cache.size <= this.maxCached) return;
    for (const [k, c] of this.cache) {
      if (this.cache.size <= this.maxCached * 0.9) break;
      if (!c.dirty) this.cache.delete(k);
    }
  }
}
