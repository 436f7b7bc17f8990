/**
 * A readable view of a message on tapflow's bus, for operators (`tapflow dlq show`): its type
 * from the subject it was published on (bus.proto's subject table), its fields as protobuf JSON
 * (enum names, bytes as base64), and for each event whether the bus codec (src/bus/codec.ts)
 * accepts it now — the checks a role applies before processing it. What cannot be decoded is
 * shown as raw bytes with the reason.
 */
import {
  BusClaim as PbBusClaim,
  BusTap as PbBusTap,
  ClaimDecision as PbClaimDecision,
  Decision as PbDecision,
  RiskFlag as PbRiskFlag,
  Settlement as PbSettlement,
} from '../gen/tapflow/v1/bus.js';
import { decodeBusClaim, decodeBusTap, decodeClaimDecision, decodeDecision, decodeRiskFlag, decodeSettlement, splitFields } from './codec.js';

/** The bus's message types, by subject prefix and by part kind. */
interface EventCodec {
  /** Protobuf JSON of the bytes; throws when they are not protobuf of the type. */
  fields(raw: Uint8Array): unknown;
  /** The codec's decoder with its range checks; throws what a role would dead-letter. */
  check(raw: Uint8Array): unknown;
}
const codec = <T>(pb: { decode(raw: Uint8Array): T; toJSON(m: T): unknown }, check: (raw: Uint8Array) => unknown): EventCodec => ({ fields: (raw) => pb.toJSON(pb.decode(raw)), check });
const EVENTS = {
  BusTap: codec(PbBusTap, decodeBusTap),
  Decision: codec(PbDecision, decodeDecision),
  Settlement: codec(PbSettlement, decodeSettlement),
  RiskFlag: codec(PbRiskFlag, decodeRiskFlag),
  BusClaim: codec(PbBusClaim, decodeBusClaim),
  ClaimDecision: codec(PbClaimDecision, decodeClaimDecision),
} as const;
type EventType = keyof typeof EVENTS;

/** A bundle type: its repeated fields, by field number. */
const BUNDLES = {
  TapBundle: { 1: ['taps', 'BusTap'] },
  DecisionBundle: { 1: ['decisions', 'Decision'], 2: ['flags', 'RiskFlag'] },
  SettlementBundle: { 1: ['settlements', 'Settlement'], 2: ['flags', 'RiskFlag'] },
} as const satisfies Record<string, Record<number, readonly [string, EventType]>>;
type BundleType = keyof typeof BUNDLES;

/** Subject prefix → the message type published there (proto/tapflow/v1/bus.proto). */
const BY_SUBJECT: [prefix: string, type: BundleType | EventType][] = [
  ['tapflow.taps.', 'TapBundle'],
  ['tapflow.decisions.', 'DecisionBundle'],
  ['tapflow.settlements.', 'SettlementBundle'],
  ['tapflow.risk.', 'RiskFlag'],
  ['tapflow.claims.', 'BusClaim'],
  ['tapflow.claimdecisions.', 'ClaimDecision'],
];

/** Part kind (a dead letter's `part`, e.g. "tap-3") → the event type it holds. */
const BY_PART: Record<string, EventType> = { tap: 'BusTap', decision: 'Decision', settlement: 'Settlement', flag: 'RiskFlag' };

/** One event: its fields, and the codec's complaint when it would refuse it. */
export interface EventView {
  fields?: unknown;
  /** Why the codec refuses it (or why it cannot be read at all); absent when it decodes. */
  error?: string;
  /** The bytes, when they cannot be read as the type. */
  base64?: string;
}

export interface PayloadView {
  /** The message type, or undefined when the subject and part name none tapflow knows. */
  type?: string;
  size: number;
  /** An event (the type is an event type). */
  event?: EventView;
  /** A bundle's events by field name (the type is a bundle). */
  parts?: Record<string, EventView[]>;
  /** Why the bytes could not be read as the type, and the bytes. */
  error?: string;
  base64?: string;
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

function eventView(type: EventType, raw: Uint8Array): EventView {
  const { fields: read, check } = EVENTS[type];
  let fields: unknown;
  try {
    fields = read(raw);
  } catch (err) {
    return { error: `not a ${type}: ${message(err)}`, base64: Buffer.from(raw).toString('base64') };
  }
  try {
    check(raw);
    return { fields };
  } catch (err) {
    return { fields, error: message(err) };
  }
}

/** The type of a message published on `subject`; with `part`, of that part of it. */
export function payloadType(subject: string, part = ''): string | undefined {
  if (part !== '') {
    const kind = /^([a-z]+)-\d+$/.exec(part)?.[1];
    return kind === undefined ? undefined : BY_PART[kind];
  }
  return BY_SUBJECT.find(([prefix]) => subject.startsWith(prefix))?.[1];
}

/** A view of `data`, a message published on `subject` (or the part `part` of one). */
export function viewPayload(subject: string, part: string, data: Uint8Array): PayloadView {
  const type = payloadType(subject, part);
  const size = data.length;
  const raw = () => Buffer.from(data).toString('base64');
  if (type === undefined) return { size, error: `no known message type for subject ${subject}${part ? ` part ${part}` : ''}`, base64: raw() };
  if (type in EVENTS) return { type, size, event: eventView(type as EventType, data) };
  const layout = BUNDLES[type as BundleType] as Record<number, readonly [string, EventType]>;
  let fields: Map<number, Uint8Array[]>;
  try {
    fields = splitFields(data);
  } catch (err) {
    return { type, size, error: message(err), base64: raw() };
  }
  const unknown = [...fields.keys()].filter((no) => layout[no] === undefined);
  if (unknown.length > 0) return { type, size, error: `${type} has no field ${unknown.join(', ')}`, base64: raw() };
  const parts: Record<string, EventView[]> = {};
  for (const [no, [name, eventType]] of Object.entries(layout)) parts[name] = (fields.get(Number(no)) ?? []).map((p) => eventView(eventType, p));
  return { type, size, parts };
}
