/**
 * A gRPC client of tapflow.v1.TerminalIngest that sends exact bytes: requests are written as
 * given (no encoder between the test and the wire). Acks are decoded without loss (seq as a
 * bigint, whatever its size), the unary answers with the generated decoders. For tests of what a
 * broken or hostile terminal can send.
 */
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createFileRegistry, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { ClaimResult, TapStatus } from '../../../src/gen/tapflow/v1/ingest.js';

const identity = (b: Buffer) => b;
const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(join(import.meta.dirname, '..', '..', '..', 'src', 'gen', 'tapflow.binpb'))));
const TAP_ACK = registry.getMessage('tapflow.v1.TapAck')!;
const BATCH_ACK = registry.getMessage('tapflow.v1.BatchAck')!;

/** A TapAck read without loss. */
export interface TapAck {
  terminalId: string;
  seq: bigint;
  status: TapStatus;
  reason: string;
  eventId: string;
}

export function readAck(b: Uint8Array): TapAck {
  const m = fromBinary(TAP_ACK, b) as unknown as TapAck;
  return { terminalId: m.terminalId, seq: m.seq, status: m.status, reason: m.reason, eventId: m.eventId };
}

/** A BatchAck read without loss (seqs as bigint). */
export interface RawBatchAck {
  terminalId: string;
  acks: TapAck[];
  accepted: number;
  duplicates: number;
  invalid: number;
}

function readBatchAck(b: Buffer): RawBatchAck {
  const m = fromBinary(BATCH_ACK, b) as unknown as RawBatchAck;
  return { terminalId: m.terminalId, acks: m.acks.map((a) => ({ terminalId: a.terminalId, seq: a.seq, status: a.status, reason: a.reason, eventId: a.eventId })), accepted: m.accepted, duplicates: m.duplicates, invalid: m.invalid };
}

const RawIngest = grpc.makeGenericClientConstructor(
  {
    streamTaps: {
      path: '/tapflow.v1.TerminalIngest/StreamTaps',
      requestStream: true,
      responseStream: true,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: readAck,
    },
    uploadBatch: {
      path: '/tapflow.v1.TerminalIngest/UploadBatch',
      requestStream: false,
      responseStream: false,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: readBatchAck,
    },
    settleClaim: {
      path: '/tapflow.v1.TerminalIngest/SettleClaim',
      requestStream: false,
      responseStream: false,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: (a: ClaimResult) => Buffer.from(ClaimResult.encode(a).finish()),
      responseDeserialize: (b: Buffer) => ClaimResult.decode(b),
    },
  },
  'TerminalIngest',
);

export interface RawStreamOutcome {
  acks: TapAck[];
  /** The status the stream ended with, when not OK. */
  error?: grpc.ServiceError;
}

export class RawClient {
  private readonly client: grpc.Client & Record<'streamTaps' | 'uploadBatch' | 'settleClaim', (...args: unknown[]) => unknown>;

  /** `options`: channel options, e.g. `grpc.default_compression_algorithm` to send compressed. */
  constructor(address: string, options: grpc.ChannelOptions = {}) {
    this.client = new RawIngest(address, grpc.credentials.createInsecure(), options) as unknown as grpc.Client & Record<'streamTaps' | 'uploadBatch' | 'settleClaim', (...args: unknown[]) => unknown>;
  }

  /** Writes the frames on one StreamTaps call, half-closes, and collects every ack until the end. */
  stream(md: grpc.Metadata, frames: Uint8Array[], deadlineMs = 15_000): Promise<RawStreamOutcome> {
    const call = this.client.streamTaps(md, { deadline: Date.now() + deadlineMs }) as grpc.ClientDuplexStream<Buffer, TapAck>;
    const acks: TapAck[] = [];
    return new Promise((resolve) => {
      call.on('data', (a: TapAck) => acks.push(a));
      call.on('end', () => resolve({ acks }));
      call.on('error', (error: grpc.ServiceError) => resolve({ acks, error }));
      for (const f of frames) call.write(Buffer.from(f));
      call.end();
    });
  }

  /** The open call itself, for tests that pace writes and reads. */
  openStream(md: grpc.Metadata): grpc.ClientDuplexStream<Buffer, TapAck> {
    return this.client.streamTaps(md) as grpc.ClientDuplexStream<Buffer, TapAck>;
  }

  unary<T>(method: 'uploadBatch' | 'settleClaim', md: grpc.Metadata, bytes: Uint8Array): Promise<{ ok: true; value: T } | { ok: false; error: grpc.ServiceError }> {
    return new Promise((resolve) =>
      this.client[method](Buffer.from(bytes), md, { deadline: Date.now() + 15_000 }, (error: grpc.ServiceError | null, value: T) => resolve(error ? { ok: false, error } : { ok: true, value })),
    );
  }

  close(): void {
    this.client.close();
  }
}
