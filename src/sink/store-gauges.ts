/**
 * The store's alert gauges, computed from ClickHouse by the active sink (the one holding the
 * sink lease: it has the store) every TAPFLOW_STORE_CHECK_INTERVAL_MS, and cleared when it
 * loses the lease, so a standby exports none of them (its label-less gauges read 0) and a
 * former owner leaves nothing stale behind:
 * - tapflow_ledger_imbalance_fen: debits − credits of the whole ledger (ledger_per_day), so the
 *   figure survives any role's restart;
 * - tapflow_venues_acceptance_drop / tapflow_venues_refusal_surge and, for the worst venues
 *   (at most VENUE_CHECK.topK), tapflow_venue_acceptance_ratio and
 *   tapflow_venue_rejects_per_minute by venue and window (recent | history);
 * - tapflow_terminals_seen / tapflow_terminals_silent by region and scene;
 * - tapflow_store_checks_timestamp_seconds: when all of them were last computed.
 * One round at a time; its queries read small aggregates (src/store/checks.ts) and are async, so
 * the event loop is free while ClickHouse works.
 */
import type { Logger } from '../observe/log.js';
import type { Metrics } from '../observe/metrics.js';
import { ledgerImbalanceFen, silentTerminals, venueAcceptance, type ClickHouseEngine } from '../store/mod.js';

export interface StoreGaugesOptions {
  engine: ClickHouseEngine;
  metrics: Metrics;
  log: Logger;
  intervalMs: number;
  silentMinutes: number;
  now?: () => number;
}

export class StoreGauges {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private failures = 0;

  constructor(private readonly o: StoreGaugesOptions) {}

  /** Starts computing (now, then every interval). */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.compute(), this.o.intervalMs);
    this.timer.unref();
    void this.compute();
  }

  /** Stops, waits for a round in progress, and clears the gauges (no stale figures). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
    this.clear();
  }

  /** One round; resolves when the gauges are set (a failed round is logged and leaves them as they were). */
  compute(): Promise<void> {
    return (this.running ??= this.round()
      .then(() => {
        this.failures = 0;
      })
      .catch((err: unknown) => {
        this.failures++;
        this.o.log[this.failures >= 3 ? 'warn' : 'debug']({ err: (err as Error).message, failures: this.failures }, 'computing the store gauges failed');
      })
      .finally(() => (this.running = undefined)));
  }

  private async round(): Promise<void> {
    const { engine, metrics: m } = this.o;
    const now = (this.o.now ?? Date.now)();
    const imbalance = await ledgerImbalanceFen(engine);
    const venues = await venueAcceptance(engine, now);
    const terminals = await silentTerminals(engine, this.o.silentMinutes, now);
    if (!this.timer) return; // stopped meanwhile: leave the gauges cleared
    m.ledgerImbalance.set(imbalance);
    m.venuesAcceptanceDrop.set(venues.drops);
    m.venuesRefusalSurge.set(venues.surges);
    m.venueAcceptance.reset();
    m.venueRejectsPerMinute.reset();
    for (const v of venues.worst) {
      m.venueAcceptance.set({ venue: v.venueId, window: 'recent' }, v.recentAcceptance);
      m.venueAcceptance.set({ venue: v.venueId, window: 'history' }, v.historyAcceptance);
      m.venueRejectsPerMinute.set({ venue: v.venueId, window: 'recent' }, v.recentRejectsPerMinute);
      m.venueRejectsPerMinute.set({ venue: v.venueId, window: 'history' }, v.historyRejectsPerMinute);
    }
    m.terminalsSeen.reset();
    m.terminalsSilent.reset();
    for (const t of terminals) {
      m.terminalsSeen.set({ region: t.region, scene: t.scene }, t.seen);
      m.terminalsSilent.set({ region: t.region, scene: t.scene }, t.silent);
    }
    m.storeChecked.set(now / 1000);
  }

  private clear(): void {
    const m = this.o.metrics;
    for (const g of [m.ledgerImbalance, m.venuesAcceptanceDrop, m.venuesRefusalSurge, m.venueAcceptance, m.venueRejectsPerMinute, m.terminalsSeen, m.terminalsSilent, m.storeChecked]) g.reset();
  }
}
