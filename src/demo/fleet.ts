/**
 * `tapflow demo`: a simulated terminal fleet streaming taps to the ingest over real gRPC, with
 * a live summary every few seconds (taps/s, accepted/rejected with the top reasons, fares by
 * region, rows stored) and, at the end, a closing summary of the run. The fare figures and the
 * closing summary are given by the caller (src/cli/run.ts reads them from the store, for this
 * run only, so they are the figures `tapflow report --since` shows).
 */
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import type { Writable } from 'node:stream';
import type { Config } from '../config/config.js';
import { TerminalIngestClient, TapStatus, type Tap, type TapAck } from '../gen/tapflow/v1/ingest.js';
import { loadVenueDirectory } from '../domain/network/index.js';
import { parseKeyFile } from '../domain/card/keys.js';
import { demoTerminalSecret } from '../ingest/terminals.js';
import { issueTerminalCert, type FleetCa } from '../ingest/tls.js';
import type { Logger } from '../observe/log.js';
import type { Registry } from 'prom-client';
import { TapGenerator } from './generator.js';
import { trustFilePath } from '../validate/trust.js';
import type { BucketSet } from '../bus/topology.js';
import { putHotlistEntry } from '../validate/data-store.js';
import { tokensOf, type TokenKeySet } from '../domain/card/token-keys.js';

export interface DemoOptions {
  target: string;
  cfg: Config;
  /**
   * Mutual TLS (the default): each demo terminal gets a certificate of its own from this CA
   * (issued in memory at its first tap) and its own TLS connection. Absent: the dev-secrets path.
   */
  tls?: { ca: FleetCa };
  fleetKey: Uint8Array;
  tokenKeys: TokenKeySet;
  buckets: BucketSet;
  /** The process's metrics, its worker threads' included. */
  metrics: () => Promise<Registry>;
  rate: number;
  terminals: number;
  durationS?: number;
  log: Logger;
  out: Writable;
  /** Fares of this run by terminal region (fen), and what they are (e.g. "fares stored"). */
  fares: { label: string; byRegion(): Promise<Record<string, number>> };
  /** Resolves once the pipeline has processed every tap sent (false: it gave up waiting). */
  drained: () => Promise<boolean>;
  /** The closing summary of the run, printed after the final line. */
  closingSummary?: (drained: boolean) => Promise<string>;
}

type LabelValues = { labels: Record<string, string | number>; value: number }[];

/** The values of a metric of the registry (none when it has no such metric). */
async function values(registry: Registry, name: string): Promise<LabelValues> {
  const m = registry.getSingleMetric(name);
  return m ? ((await m.get()).values as LabelValues) : [];
}

export async function runDemoFleet(o: DemoOptions): Promise<void> {
  const venues = loadVenueDirectory(o.cfg.TAPFLOW_TARIFF_DIR);
  const keys = parseKeyFile(readFileSync(trustFilePath(o.cfg), 'utf8'), trustFilePath(o.cfg));
  const groups = 3 * 3; // regions x transit/culture scenes
  const gen = new TapGenerator({ venues, keys, cards: Math.max(2000, o.rate * 90), terminalsPerGroup: Math.max(1, Math.ceil(o.terminals / groups)), seed: Date.now() % 2 ** 31, firstSeq: Date.now() });
  for (const c of gen.pickHotlisted(20)) {
    await putHotlistEntry(o.buckets.hotlist, { cardToken: tokensOf(o.tokenKeys, 'card', c.number, 1).token, reason: 'LOST', since: Date.now(), note: 'demo fleet' });
  }
  // Dev-secrets: one plaintext connection for the whole fleet. Mutual TLS: a connection per
  // terminal, as each presents its own certificate.
  const client = o.tls ? undefined : new TerminalIngestClient(o.target, grpc.credentials.createInsecure());
  const tlsClients: TerminalIngestClient[] = [];
  const caPem = o.tls ? Buffer.from(o.tls.ca.certPem) : undefined;
  const clientFor = (terminalId: string): TerminalIngestClient => {
    if (client) return client;
    const cert = issueTerminalCert(o.tls!.ca, terminalId, 1);
    // The server certificate names localhost (and 127.0.0.1); the name avoids Node's warning about
    // an IP address as the TLS server name.
    const c = new TerminalIngestClient(o.target, grpc.credentials.createSsl(caPem!, Buffer.from(cert.keyPem), Buffer.from(cert.certPem)), { 'grpc.ssl_target_name_override': 'localhost' });
    tlsClients.push(c);
    return c;
  };
  const streams = new Map<string, grpc.ClientDuplexStream<Tap, TapAck>>();
  const statuses = new Map<string, number>();
  let sent = 0;
  let acked = 0;
  const streamFor = (terminalId: string) => {
    let s = streams.get(terminalId);
    if (!s) {
      const md = new grpc.Metadata();
      md.set('x-terminal-id', terminalId);
      if (!o.tls) md.set('x-terminal-secret', demoTerminalSecret(o.fleetKey, terminalId));
      s = clientFor(terminalId).streamTaps(md);
      s.on('data', (a: TapAck) => {
        acked++;
        const k = TapStatus[a.status] ?? String(a.status);
        statuses.set(k, (statuses.get(k) ?? 0) + 1);
      });
      s.on('error', (err) => o.log.warn({ terminalId, err: err.message }, 'demo stream failed'));
      streams.set(terminalId, s);
    }
    return s;
  };

  const started = Date.now();
  let lastPrint = started;
  let lastSent = 0;
  const print = async (final = false) => {
    const now = Date.now();
    const rate = ((sent - lastSent) * 1000) / Math.max(1, now - lastPrint);
    lastPrint = now;
    lastSent = sent;
    const registry = await o.metrics();
    const decisions = await values(registry, 'tapflow_decisions_total');
    let accepted = 0;
    let rejected = 0;
    const reasons = new Map<string, number>();
    for (const d of decisions) {
      if (d.labels.verdict === 'ACCEPTED') accepted += d.value;
      else {
        rejected += d.value;
        reasons.set(String(d.labels.reason), (reasons.get(String(d.labels.reason)) ?? 0) + d.value);
      }
    }
    const top = [...reasons.entries()].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([r, n]) => `${r} ${n}`).join(', ');
    const fares = await o.fares.byRegion();
    const fareText = ['BJ', 'TJ', 'HE'].map((r) => `${r} ¥${((fares[r] ?? 0) / 100).toFixed(2)}`).join('  ');
    const stored = (await values(registry, 'tapflow_stored_rows_total')).find((v) => v.labels.table === 'decisions')?.value ?? 0;
    const st = [...statuses.entries()].map(([k, n]) => `${k} ${n}`).join(', ');
    o.out.write(
      `[${new Date(now).toISOString().slice(11, 19)}] ${final ? 'final' : `${rate.toFixed(0)} taps/s`} | sent ${sent}, acked ${acked} (${st}) | decided: accepted ${accepted}, rejected ${rejected}${top ? ` (${top})` : ''} | ${o.fares.label} ${fareText} | stored ${stored}\n`,
    );
  };

  o.out.write(`demo fleet: ${o.terminals} terminals, ${gen.cards.length} cards, ${o.rate} taps/s offered -> ${o.target} (${o.tls ? 'mutual TLS, a certificate per terminal' : 'plaintext, dev-secrets'})${o.durationS ? ` for ${o.durationS}s` : ' (Ctrl-C stops)'}\n`);
  let stop = false;
  const onSig = () => (stop = true);
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  const tickMs = 50;
  let credit = 0;
  let lastTick = Date.now();
  while (!stop && (!o.durationS || Date.now() - started < o.durationS * 1000)) {
    const now = Date.now();
    // Open loop: the offered rate follows the clock, not how fast this loop gets to run.
    credit = Math.min(credit + (o.rate * (now - lastTick)) / 1000, o.rate);
    lastTick = now;
    let guard = 0;
    while (credit >= 1 && guard++ < 4 * o.rate) {
      const e = gen.next(now);
      if (e.kind === 'idle') continue;
      credit -= 1;
      streamFor(e.terminalId).write(e.tap);
      sent++;
    }
    if (Date.now() - lastPrint >= 5000) await print();
    await new Promise((r) => setTimeout(r, tickMs));
  }
  process.off('SIGINT', onSig);
  process.off('SIGTERM', onSig);
  // Let the acks and the pipeline catch up.
  for (const s of streams.values()) s.end();
  const until = Date.now() + 15_000;
  while (acked < sent && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  // The final line and the closing summary count what the pipeline made of every tap sent.
  const drained = await o.drained();
  await print(true);
  if (o.closingSummary) o.out.write(`\n${await o.closingSummary(drained)}\n`);
  client?.close();
  for (const c of tlsClients) c.close();
}
