/**
 * Least privilege on the bus: one NATS user per role, with publish and subscribe allow lists
 * covering exactly what the role does, and an admin user for the topology step
 * (`tapflow bus setup`) and the operator tools (`tapflow dlq …`). One table: the local
 * nats-server tapflow starts, `tapflow bus permissions` (the block for an operator's server),
 * the README and the tests all use it.
 *
 * A process running several roles (`tapflow start`) connects as `all`, the union of the four
 * roles' permissions: roles in one process share its memory, so users per role inside one
 * process would separate nothing. No role user may create, update or delete a stream or a
 * durable consumer; only ephemeral read consumers (KV watches, a state changelog's tail).
 */
import { Buckets, Streams } from './subjects.js';
import { consumerPlan } from './topology.js';
import type { RoleName } from '../runtime/role-names.js';

/** The bus users: one per role, `all` for a process running several, `admin` for the setup step and operator tools. */
export const BUS_USERS = ['admin', 'ingest', 'validator', 'settler', 'sink', 'all'] as const;
export type BusUser = (typeof BUS_USERS)[number];

/** The NATS user name of a bus user. */
export function natsUserName(u: BusUser): string {
  return `tapflow-${u}`;
}

/** The bus user a process running `roles` connects as. */
export function busUserFor(roles: readonly RoleName[]): BusUser {
  return roles.length === 1 ? roles[0]! : 'all';
}

export interface SubjectPermissions {
  publish: string[];
  subscribe: string[];
}

const API = '$JS.API';

/**
 * What every role needs: the API's account check, replies on its inboxes, and the read-only
 * look at the topology a role makes at start (bindTopology): stream and KV bucket info, the
 * listing of the validators' tap consumers (the deployment's partition count).
 */
function base(): SubjectPermissions {
  return {
    publish: [
      `${API}.INFO`,
      ...Object.values(Streams).map((s) => `${API}.STREAM.INFO.${s.name}`),
      ...Object.values(Buckets).map((b) => `${API}.STREAM.INFO.KV_${b}`),
      `${API}.CONSUMER.LIST.${Streams.TAPS.name}`,
    ],
    subscribe: ['_INBOX.>'],
  };
}

/** Reading a KV bucket: open it, get keys (direct get or message get), watch and list it. */
function kvRead(bucket: string): string[] {
  const s = `KV_${bucket}`;
  return [
    `${API}.STREAM.INFO.${s}`,
    `${API}.DIRECT.GET.${s}`,
    `${API}.DIRECT.GET.${s}.>`,
    `${API}.STREAM.MSG.GET.${s}`,
    // Ordered (ephemeral) consumers of watches and key listings.
    `${API}.CONSUMER.CREATE.${s}`,
    `${API}.CONSUMER.CREATE.${s}.>`,
    `${API}.CONSUMER.INFO.${s}.*`,
    `${API}.CONSUMER.DELETE.${s}.*`,
    `${API}.CONSUMER.MSG.NEXT.${s}.*`,
  ];
}

/** Writing keys `keys` (a subject pattern, `>` for all) of a KV bucket. */
function kvWrite(bucket: string, keys = '>'): string[] {
  return [`$KV.${bucket}.${keys}`];
}

/** Pulling from and acknowledging a durable consumer (it must exist: created by the setup step). */
function durable(stream: string, name: string): string[] {
  return [`${API}.STREAM.INFO.${stream}`, `${API}.CONSUMER.INFO.${stream}.${name}`, `${API}.CONSUMER.MSG.NEXT.${stream}.${name}`, `$JS.ACK.${stream}.${name}.>`];
}

/** Partition leases and the membership of `role` (keys `member.<role>.*`, `part.<role>.*`). */
function leases(role: string): string[] {
  return [...kvWrite(Buckets.LEASES, `member.${role}.>`), ...kvWrite(Buckets.LEASES, `part.${role}.>`)];
}

/**
 * A partition owner's state: its checkpoints bucket (read and write) and its changelog in the
 * STATE stream (publish its own subjects; read them back with a last-by-subject get and an
 * ephemeral consumer filtered on them).
 */
function ownedState(role: string, bucket: string): string[] {
  const st = Streams.STATE.name;
  return [
    ...kvRead(bucket),
    ...kvWrite(bucket),
    `tapflow.state.${role}.>`,
    `${API}.STREAM.INFO.${st}`,
    `${API}.STREAM.MSG.GET.${st}`,
    `${API}.CONSUMER.CREATE.${st}.*.tapflow.state.${role}.>`,
    `${API}.CONSUMER.INFO.${st}.*`,
    `${API}.CONSUMER.DELETE.${st}.*`,
    `${API}.CONSUMER.MSG.NEXT.${st}.*`,
  ];
}

/** Durable consumers of the plan whose names match. */
function durables(partitions: number, match: (name: string) => boolean): string[] {
  return consumerPlan(partitions)
    .filter((c) => match(c.name))
    .flatMap((c) => durable(Streams[c.stream].name, c.name));
}

function uniq(xs: string[]): string[] {
  return [...new Set(xs)];
}

/** Each role's permissions (what each does, see the README's "Least privilege" section). */
function rolePermissions(partitions: number): Record<RoleName, SubjectPermissions> {
  const b = base();
  const roles: Record<RoleName, SubjectPermissions> = {
    // Publishes taps, claims and ingest's risk flags; waits for claim results; keeps the claims
    // it was sent in the claims bucket.
    ingest: {
      publish: [...b.publish, 'tapflow.taps.*', 'tapflow.claims.*', 'tapflow.risk.*', 'tapflow.dlq.ingest', ...kvRead(Buckets.CLAIMS), ...kvWrite(Buckets.CLAIMS)],
      subscribe: [...b.subscribe, 'tapflow.claimresult.>'],
    },
    // Reads taps and claims; writes decisions, claim decisions, risk flags, its own state and
    // the risk windows' state; reads (never writes) the hotlist, project list and risk rules.
    validator: {
      publish: [
        ...b.publish,
        ...durables(partitions, (n) => n.startsWith('validator-') || n.startsWith('risk-windows')),
        'tapflow.decisions.*',
        'tapflow.claimdecisions.*',
        'tapflow.risk.*',
        'tapflow.dlq.validator',
        'tapflow.dlq.risk-windows',
        // A claim that cannot be decided is answered at once (its result, the claims bucket).
        'tapflow.claimresult.>',
        ...kvRead(Buckets.CLAIMS),
        ...kvWrite(Buckets.CLAIMS),
        ...kvRead(Buckets.HOTLIST),
        ...kvRead(Buckets.PROJECTS),
        ...kvRead(Buckets.RISK_RULES),
        ...kvRead(Buckets.LEASES),
        ...leases('validator'),
        ...leases('risk-windows'),
        ...ownedState('validator', Buckets.VALIDATOR_STATE),
        ...ownedState('risk-windows', Buckets.WINDOW_STATE),
      ],
      subscribe: [...b.subscribe],
    },
    // Reads decisions and claim decisions; writes settlements, claim results and its own state.
    settler: {
      publish: [
        ...b.publish,
        ...durables(partitions, (n) => n.startsWith('settler-')),
        'tapflow.settlements.*',
        'tapflow.dlq.settler',
        'tapflow.claimresult.>',
        ...kvRead(Buckets.CLAIMS),
        ...kvWrite(Buckets.CLAIMS),
        ...kvRead(Buckets.LEASES),
        ...leases('settler'),
        ...ownedState('settler', Buckets.SETTLER_STATE),
      ],
      subscribe: [...b.subscribe],
    },
    // Reads decisions, settlements and risk flags into ClickHouse; publishes nothing but its
    // dead letters.
    sink: {
      publish: [...b.publish, ...durables(partitions, (n) => n.startsWith('sink-')), 'tapflow.dlq.sink', ...kvRead(Buckets.LEASES), ...leases('sink')],
      subscribe: [...b.subscribe],
    },
  };
  for (const p of Object.values(roles)) {
    p.publish = uniq(p.publish);
    p.subscribe = uniq(p.subscribe);
  }
  return roles;
}

/**
 * Every bus user's permissions for a deployment of `partitions` partitions (the durable
 * consumers are named per partition). `admin` has no allow list: it may do anything.
 */
export function busPermissions(partitions: number): Record<Exclude<BusUser, 'admin'>, SubjectPermissions> {
  const roles = rolePermissions(partitions);
  const all = Object.values(roles);
  return {
    ...roles,
    all: { publish: uniq(all.flatMap((p) => p.publish)), subscribe: uniq(all.flatMap((p) => p.subscribe)) },
  };
}

/**
 * The `authorization` block of a nats-server config: every bus user with its permissions.
 * `password(u)` is the password text as it goes into the file: a JSON-quoted literal, or a
 * `$VARIABLE` reference nats-server resolves from its environment.
 */
export function natsAuthorizationBlock(partitions: number, password: (u: BusUser) => string): string {
  const perms = busPermissions(partitions);
  const list = (xs: string[]) => `[${xs.map((x) => JSON.stringify(x)).join(', ')}]`;
  const users = BUS_USERS.map((u) => {
    const head = `    { user: ${JSON.stringify(natsUserName(u))}, password: ${password(u)}`;
    if (u === 'admin') return `${head} }`;
    const p = perms[u];
    return `${head},\n      permissions: {\n        publish: { allow: ${list(p.publish)} },\n        subscribe: { allow: ${list(p.subscribe)} }\n      } }`;
  });
  return ['authorization {', '  users: [', users.join(',\n'), '  ]', '}', ''].join('\n');
}

/** The environment variable an operator's nats-server reads a bus user's password from. */
export function passwordVariable(u: BusUser): string {
  return `TAPFLOW_NATS_PASSWORD_${u.toUpperCase()}`;
}
