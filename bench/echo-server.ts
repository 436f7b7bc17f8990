/**
 * The gRPC ceiling's server: tapflow's own service definition (tapflow.v1.TerminalIngest, the
 * generated Tap/TapAck codecs, the ingest's server options) answering every tap on StreamTaps
 * with an ACCEPTED_DURABLE ack at once — ingest without JetStream, tokens or checks. Run as a
 * child process by the bench: `node --import tsx bench/echo-server.ts [port]`; prints
 * "listening <port>" on stdout once bound, and stops on SIGTERM.
 */
import * as grpc from '@grpc/grpc-js';
import { TapStatus, TerminalIngestService, type Tap, type TerminalIngestServer } from '../src/gen/tapflow/v1/ingest.js';
import { MAX_BATCH_TAPS, maxMessageBytes } from '../src/domain/limits.js';

const handlers: TerminalIngestServer = {
  streamTaps: (call) => {
    call.on('data', (t: Tap) => {
      // Same flow control as ingest: stop reading while the client is not reading acks.
      if (!call.write({ terminalId: t.terminalId, seq: t.seq, status: TapStatus.ACCEPTED_DURABLE, reason: '', eventId: `${t.terminalId}:${t.seq}` })) {
        call.pause();
        call.once('drain', () => call.resume());
      }
    });
    call.on('end', () => call.end());
    call.on('error', () => undefined);
  },
  uploadBatch: (call, cb) => {
    const acks = call.request.taps.map((t) => ({ terminalId: t.terminalId, seq: t.seq, status: TapStatus.ACCEPTED_DURABLE, reason: '', eventId: `${t.terminalId}:${t.seq}` }));
    cb(null, { terminalId: call.request.terminalId, acks, accepted: acks.length, duplicates: 0, invalid: 0 });
  },
  settleClaim: (_call, cb) => cb({ code: grpc.status.UNIMPLEMENTED, details: 'echo server' } as grpc.ServiceError),
  getClaim: (_call, cb) => cb({ code: grpc.status.UNIMPLEMENTED, details: 'echo server' } as grpc.ServiceError),
};

// The ingest's server options (src/ingest/server.ts startGrpcServer), with the message limit of
// the largest batch ingest can be configured for.
const server = new grpc.Server({ 'grpc.max_receive_message_length': maxMessageBytes(MAX_BATCH_TAPS), 'grpc.keepalive_permit_without_calls': 1 });
server.addService(TerminalIngestService, handlers);
server.bindAsync(`127.0.0.1:${Number(process.argv[2] ?? 0)}`, grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    console.error(err.message);
    process.exit(1);
  }
  process.stdout.write(`listening ${port}\n`);
});
process.once('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
