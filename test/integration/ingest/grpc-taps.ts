/**
 * Helpers of the ingest integration tests: taps as a gate sends them, a StreamTaps call that
 * collects its acks, and promise wrappers of the unary calls that keep the gRPC error.
 */
import * as grpc from '@grpc/grpc-js';
import { Direction, RiderCategory, Scene, type BatchAck, type Tap, type TapAck, type TapBatch, type TerminalIngestClient } from '../../../src/gen/tapflow/v1/ingest.js';

/**
 * A Beijing subway entry tap. Each seq is a different card, so taps of one test never interact
 * in the validator; the MAC is not checked by ingest (a bad MAC is a decision, not a shape error).
 */
export function tap(terminalId: string, seq: number, over: Partial<Tap> = {}): Tap {
  return {
    terminalId,
    seq,
    deviceTime: Date.now(),
    scene: Scene.RAIL,
    venueId: 'bj-subway:西直门',
    direction: Direction.ENTRY,
    card: { $case: 'chip', value: { cardNumber: `11${String(60_000_000 + seq).padStart(10, '0')}`, counter: 1, mac: Buffer.alloc(8) } },
    amountFen: 0,
    riderCategory: RiderCategory.ADULT,
    ...over,
  };
}

export function metadata(terminalId?: string, secret?: string): grpc.Metadata {
  const md = new grpc.Metadata();
  if (terminalId !== undefined) md.set('x-terminal-id', terminalId);
  if (secret !== undefined) md.set('x-terminal-secret', secret);
  return md;
}

export interface StreamOutcome {
  acks: TapAck[];
  /** The status the call ended with (OK when the server ended it cleanly). */
  error?: grpc.ServiceError;
}

/**
 * Writes the taps on one StreamTaps call, half-closes, and collects every ack until the end.
 * The call has a deadline: a server that never ends the call fails the test with
 * DEADLINE_EXCEEDED instead of hanging it.
 */
export function stream(client: TerminalIngestClient, md: grpc.Metadata, taps: Tap[], deadlineMs = 15_000): Promise<StreamOutcome> {
  const call = client.streamTaps(md, { deadline: Date.now() + deadlineMs });
  const acks: TapAck[] = [];
  return new Promise((resolve) => {
    call.on('data', (a: TapAck) => acks.push(a));
    call.on('end', () => resolve({ acks }));
    call.on('error', (error: grpc.ServiceError) => resolve({ acks, error }));
    for (const t of taps) call.write(t);
    call.end();
  });
}

export type CallResult<T> = { ok: true; value: T } | { ok: false; error: grpc.ServiceError };

export function uploadBatch(client: TerminalIngestClient, md: grpc.Metadata, b: TapBatch): Promise<CallResult<BatchAck>> {
  return new Promise((resolve) => client.uploadBatch(b, md, { deadline: Date.now() + 15_000 }, (error, value) => resolve(error ? { ok: false, error } : { ok: true, value })));
}

/** The gRPC status code of a call, or 'OK'. */
export const codeOf = <T>(r: CallResult<T>): grpc.status | 'OK' => (r.ok ? 'OK' : r.error.code);
