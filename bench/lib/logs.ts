/**
 * What tapflow's processes logged at warn level and above during the run (their logs are in
 * the results folder, one JSON object a line as pino writes them: {"level":40,"msg":…}): counts
 * by message, and the ones issue 10 asks about by name — `lease lost` (a partition owner lost
 * its lease under load) and a hand-over that went on without a previous owner's messages.
 */

export interface LogSummary {
  /** Lines at warn (40) and above, by process and message: count. */
  by_message: Record<string, number>;
  lease_lost: number;
  /** "messages of a previous owner did not come back within twice the ack wait": a partition held back, then went on. */
  handover_gave_up: number;
  batch_failed: number;
  errors: number;
}

/** Counts warn and error lines of one process's log (`name`: the process) into `into`. */
export function summarizeLog(name: string, text: string, into: LogSummary = emptyLogSummary()): LogSummary {
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    let rec: { level?: number; msg?: string };
    try {
      rec = JSON.parse(line) as { level?: number; msg?: string };
    } catch {
      continue;
    }
    if ((rec.level ?? 0) < 40) continue;
    const msg = rec.msg ?? '(no message)';
    const k = `${name}: ${msg}`;
    into.by_message[k] = (into.by_message[k] ?? 0) + 1;
    if (msg === 'lease lost') into.lease_lost++;
    if (msg.startsWith('messages of a previous owner did not come back')) into.handover_gave_up++;
    if (msg.startsWith('batch failed')) into.batch_failed++;
    if ((rec.level ?? 0) >= 50) into.errors++;
  }
  return into;
}

export function emptyLogSummary(): LogSummary {
  return { by_message: {}, lease_lost: 0, handover_gave_up: 0, batch_failed: 0, errors: 0 };
}
