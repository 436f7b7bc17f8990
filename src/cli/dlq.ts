/**
 * The actions of `tapflow dlq list|show|replay` (registered in dlq-commands.ts), against the
 * JetStream of the deployment at NATS_URL.
 */
import type { Bus } from '../bus/connection.js';
import { checkReplayTarget, getDeadLetter, publishReplay, removeDeadLetter, scanDeadLetters, summarize, type DeadLetterFilter, type DeadLetterSummary, type StoredDeadLetter } from '../bus/dead-letter-store.js';
import { viewPayload } from '../bus/payload-view.js';
import { DeadLetterError, planReplay, type Replay } from '../bus/replay.js';
import { ExitStatus } from './exit-status.js';
import type { DlqFilterFlags } from './dlq-commands.js';
import { formatTime } from './report-commands.js';

async function onBus<T>(fn: (bus: Bus) => Promise<T>): Promise<T> {
  const { loadConfig } = await import('../config/config.js');
  const { withBus } = await import('./with-bus.js');
  return withBus(loadConfig(), (bus) => fn(bus));
}

const filterOf = (f: DlqFilterFlags): DeadLetterFilter => ({ codes: f.code, roles: f.role, sinceMs: f.since });

const printJson = (v: unknown) => console.log(JSON.stringify(v, null, 2));

/** Rows of text columns, each padded to its widest cell (the last one is not). */
function columns(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd());
}

const source = (s: DeadLetterSummary) => (s.sourceStream ? `${s.sourceStream} ${s.sourceSeq}` : '?');

export async function listDeadLetters(flags: DlqFilterFlags, json: boolean): Promise<void> {
  const filter = filterOf(flags);
  const found = await onBus(async (bus) => {
    const out: DeadLetterSummary[] = [];
    for await (const d of scanDeadLetters(bus, filter)) out.push(summarize(d));
    return out;
  });
  if (json) return printJson(found);
  const filtered = filter.codes || filter.roles || filter.sinceMs !== undefined;
  console.log(found.length === 0 ? `no dead letters${filtered ? ' match' : ''}` : `${found.length} dead letter(s)${filtered ? ' match' : ''}, oldest first`);
  if (found.length === 0) return;
  const rows = [['seq', 'dead-lettered', 'role', 'code', 'source', 'subject', 'part', 'bytes', 'reason']];
  for (const s of found) {
    rows.push([String(s.dlqSeq), formatTime(s.time), s.role, s.code || '?', source(s), s.subject || '?', s.part || '-', String(s.size), s.unreadable ?? s.reason]);
  }
  for (const line of columns(rows)) console.log(`  ${line}`);
}

/** Hex of the bytes, 32 a line, at most `max` bytes. */
function hexLines(data: Uint8Array, max = 512): string[] {
  const lines: string[] = [];
  for (let o = 0; o < Math.min(data.length, max); o += 32) lines.push(`${o.toString(16).padStart(6, '0')}  ${Buffer.from(data.subarray(o, Math.min(o + 32, max))).toString('hex').replace(/(..)/g, '$1 ').trim()}`);
  if (data.length > max) lines.push(`… ${data.length - max} more bytes (--json has them all, as base64)`);
  return lines;
}

/** What a replay would publish, or why it cannot be replayed. */
function replayOrRefusal(d: StoredDeadLetter): { replay: Replay } | { refused: string } {
  if (!d.letter) return { refused: new DeadLetterError(d.dlqSeq, 'unreadable', d.unreadable ?? 'unreadable').message };
  try {
    return { replay: planReplay(d.dlqSeq, d.letter) };
  } catch (err) {
    if (err instanceof DeadLetterError) return { refused: err.message };
    throw err;
  }
}

export async function showDeadLetter(seq: number, json: boolean): Promise<void> {
  const d = await onBus((bus) => getDeadLetter(bus, seq));
  const l = d.letter;
  const payload = l ? viewPayload(l.subject, l.part, l.data) : undefined;
  const replay = replayOrRefusal(d);
  if (json) {
    return printJson({
      dlqSeq: d.dlqSeq,
      dlqSubject: d.dlqSubject,
      storedAt: d.storedAt,
      dlqHeaders: d.dlqHeaders,
      ...(d.unreadable !== undefined && { unreadable: d.unreadable, base64: Buffer.from(d.raw ?? []).toString('base64') }),
      ...(l && {
        deadLetter: {
          time: l.time,
          role: l.role,
          consumer: l.consumer,
          deliveryCount: l.deliveryCount,
          code: l.errorCode,
          reason: l.error,
          stream: l.stream,
          streamSeq: l.streamSeq,
          subject: l.subject,
          part: l.part,
          headers: l.headers,
          size: l.data.length,
          base64: Buffer.from(l.data).toString('base64'),
        },
        payload,
      }),
      replay: 'replay' in replay ? { subject: replay.replay.subject, consumer: replay.replay.consumer, msgId: replay.replay.msgId, headers: replay.replay.headers, size: replay.replay.data.length } : { refused: replay.refused },
    });
  }
  const out: string[] = [`dead letter ${d.dlqSeq} in stream DLQ (${d.dlqSubject}), stored ${formatTime(d.storedAt)}`];
  const field = (name: string, ...lines: string[]) => lines.forEach((line, i) => out.push(`  ${(i === 0 ? name : '').padEnd(14)} ${line}`));
  if (!l) {
    field('unreadable', d.unreadable ?? '');
    field('bytes', ...hexLines(d.raw ?? new Uint8Array()));
  } else {
    field('dead-lettered', `${formatTime(l.time)} by ${l.role || '?'}, consumer ${l.consumer || '?'}, after ${l.deliveryCount} deliver${l.deliveryCount === 1 ? 'y' : 'ies'}`);
    field('failure', l.errorCode || '?');
    field('reason', l.error || '?');
    field('original', `${l.stream || '?'} ${l.streamSeq} on ${l.subject || '(no subject)'}, ${l.part ? `part ${l.part} alone` : 'the whole message'} (${l.data.length} bytes)`);
    field('headers', ...(l.headers.length > 0 ? l.headers.map((h) => `${h.name}: ${h.value}`) : ['(none)']));
  }
  field('DLQ headers', ...(d.dlqHeaders.length > 0 ? d.dlqHeaders.map((h) => `${h.name}: ${h.value}`) : ['(none)']));
  if ('replay' in replay) {
    const r = replay.replay;
    field('replay', `to ${r.subject} for consumer ${r.consumer}, Nats-Msg-Id ${r.msgId}${r.part ? `, part ${r.part} as a bundle of one` : ''} (${r.data.length} bytes)`);
  } else field('replay', `refused: ${replay.refused}`);
  if (l && payload) {
    field('payload', `${payload.type ?? 'unknown type'}, ${payload.size} bytes${payload.error ? `: cannot be read (${payload.error})` : ''}`);
    if (payload.error) out.push(...hexLines(l.data).map((line) => `    ${line}`));
    else out.push(...JSON.stringify(payload.parts ?? payload.event, null, 2).split('\n').map((line) => `    ${line}`));
  }
  console.log(out.join('\n'));
}

interface ReplayOutcome {
  dlqSeq: number;
  subject: string;
  consumer: string;
  msgId: string;
  part?: string;
  size: number;
  /** Where JetStream stored it (the first copy's sequence when `duplicate`). */
  stream?: string;
  seq?: number;
  /** Replayed before within the duplicate window: this copy was dropped. */
  duplicate?: boolean;
  removed?: boolean;
}

export async function replayDeadLetters(which: { seqs: number[] } | { filter: DlqFilterFlags }, o: { dryRun: boolean; json: boolean }): Promise<void> {
  const { outcomes, refused } = await onBus(async (bus) => {
    const letters: StoredDeadLetter[] = [];
    if ('seqs' in which) {
      for (const seq of [...new Set(which.seqs)].sort((a, b) => a - b)) letters.push(await getDeadLetter(bus, seq));
    } else {
      for await (const d of scanDeadLetters(bus, filterOf(which.filter))) letters.push(d);
    }
    const plans: { d: StoredDeadLetter; r: Replay }[] = [];
    const refused: DeadLetterError[] = [];
    for (const d of letters) {
      try {
        if (!d.letter) throw new DeadLetterError(d.dlqSeq, 'unreadable', d.unreadable ?? 'unreadable');
        const r = planReplay(d.dlqSeq, d.letter);
        await checkReplayTarget(bus, d.dlqSeq, r);
        plans.push({ d, r });
      } catch (err) {
        if (err instanceof DeadLetterError) refused.push(err);
        else throw err;
      }
    }
    // Named dead letters are replayed all or none.
    if ('seqs' in which && refused.length > 0) {
      throw new Error(refused.length === 1 ? refused[0]!.message : `nothing replayed:\n${refused.map((e) => `  ${e.message}`).join('\n')}`);
    }
    const outcomes: ReplayOutcome[] = [];
    for (const { d, r } of plans) {
      const base: ReplayOutcome = { dlqSeq: d.dlqSeq, subject: r.subject, consumer: r.consumer, msgId: r.msgId, ...(r.part && { part: r.part }), size: r.data.length };
      if (o.dryRun) {
        outcomes.push(base);
        continue;
      }
      const ack = await publishReplay(bus, r);
      const removed = await removeDeadLetter(bus, d.dlqSeq);
      outcomes.push({ ...base, stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate, removed });
    }
    return { outcomes, refused };
  });
  if (o.json) printJson({ dryRun: o.dryRun, replays: outcomes, refused: refused.map((e) => ({ dlqSeq: e.dlqSeq, error: e.message })) });
  else {
    if (outcomes.length === 0 && refused.length === 0) console.log('no dead letters match: nothing to replay');
    for (const r of outcomes) {
      const what = `dead letter ${r.dlqSeq} -> ${r.subject} for ${r.consumer}${r.part ? ` (part ${r.part} as a bundle of one)` : ''}`;
      if (o.dryRun) console.log(`would replay ${what}, Nats-Msg-Id ${r.msgId}, ${r.size} bytes`);
      else if (r.duplicate) console.log(`replayed ${what}: replayed before (JetStream holds it as ${r.stream} ${r.seq}; this copy was dropped as a duplicate)${r.removed ? '; removed from DLQ' : ''}`);
      else console.log(`replayed ${what}: ${r.stream} ${r.seq}${r.removed ? '; removed from DLQ' : ''}`);
    }
    if (outcomes.length > 0) console.log(o.dryRun ? `${outcomes.length} would be replayed` : `${outcomes.length} replayed`);
    for (const e of refused) console.error(`not replayed: ${e.message}`);
  }
  // Some matched but cannot be replayed: the others were; say so in the status too.
  if (refused.length > 0) throw new ExitStatus(2);
}
