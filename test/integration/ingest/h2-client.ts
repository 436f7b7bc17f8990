/**
 * A gRPC call written by hand over HTTP/2 (node:http2), for what no gRPC client sends: a
 * length-prefixed message cut short by the end of the request, a length prefix announcing more
 * than the server accepts with nothing behind it. Each gRPC message on the wire is a 1-byte
 * compressed flag, a 4-byte big-endian length and the message bytes.
 */
import * as http2 from 'node:http2';
import type * as grpc from '@grpc/grpc-js';
import { readAck, type TapAck } from './raw-client.js';

/** One gRPC message frame: flag 0, length, bytes. */
export function grpcFrame(message: Uint8Array, announcedLength = message.length): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(announcedLength, 1);
  return Buffer.concat([head, message]);
}

export interface H2Outcome {
  /** grpc-status of the answer (trailers, or headers of a trailers-only answer). */
  status: number | undefined;
  message: string;
  /** The answer's messages, as TapAcks. */
  acks: TapAck[];
  /** Milliseconds from the request to the status. */
  ms: number;
}

/**
 * Sends `body` as the request of `method` (e.g. "StreamTaps") with the metadata's terminal id and
 * secret; ends the request after it when `end`, or keeps it open (the server must answer without
 * waiting for the rest). Resolves with the status, or after `timeoutMs` with status undefined.
 */
export function h2Call(port: number, method: string, md: grpc.Metadata, body: Buffer, o: { end: boolean; timeoutMs?: number }): Promise<H2Outcome> {
  const t0 = Date.now();
  const session = http2.connect(`http://127.0.0.1:${port}`);
  const headers: http2.OutgoingHttpHeaders = {
    ':method': 'POST',
    ':path': `/tapflow.v1.TerminalIngest/${method}`,
    'content-type': 'application/grpc',
    te: 'trailers',
  };
  for (const [k, v] of Object.entries(md.getMap())) headers[k] = String(v);
  const req = session.request(headers, { endStream: false });
  const chunks: Buffer[] = [];
  return new Promise((resolve) => {
    let status: number | undefined;
    let message = '';
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h['grpc-status'] !== undefined) {
        status = Number(h['grpc-status']);
        message = decodeURIComponent(String(h['grpc-message'] ?? ''));
      }
    };
    const finish = () => {
      clearTimeout(timer);
      const all = Buffer.concat(chunks);
      const acks: TapAck[] = [];
      for (let at = 0; at + 5 <= all.length; ) {
        const len = all.readUInt32BE(at + 1);
        acks.push(readAck(all.subarray(at + 5, at + 5 + len)));
        at += 5 + len;
      }
      req.close();
      session.destroy();
      resolve({ status, message, acks, ms: Date.now() - t0 });
    };
    const timer = setTimeout(finish, o.timeoutMs ?? 10_000);
    req.on('response', take);
    req.on('trailers', take);
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', finish);
    req.on('error', finish);
    req.write(body);
    if (o.end) req.end();
  });
}
