/**
 * `tapflow certs init|terminal|revoke`: a test fleet CA, the ingest server's certificate, the
 * terminals' certificates and the revocation list (src/ingest/tls.ts, x509.ts: node:crypto, ECDSA
 * P-256, nothing downloaded). Keys are written 0600. The folder defaults to <data dir>/tls, the
 * development CA `tapflow start` uses when no TAPFLOW_TLS_* files are configured.
 */
import { statSync } from 'node:fs';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { folder, integer } from './options.js';

const days = integer(1, 36_500, 'days of validity');

const checked = (test: (t: string) => boolean, expected: string) => (text: string) => {
  if (!test(text)) throw new InvalidArgumentError(`Expected ${expected}.`);
  return text;
};
/** A terminal id as the registry takes it (TERMINAL_ID_PATTERN of src/ingest/terminals.ts, kept here so the CLI loads no registry code). */
const terminalId = checked((t) => /^[A-Za-z0-9._-]{1,64}$/.test(t), "a terminal id: 1-64 letters, digits, '.', '_' or '-'");
const hostName = checked((t) => /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})$/.test(t), "a host name or IPv4 address (letters, digits, '.', '-')");
const serial = checked((t) => /^[0-9A-Fa-f:]+$/.test(t) && t.replace(/:/g, '').length <= 40, 'a certificate serial: hex (colons allowed), at most 20 bytes');
const filePath = (text: string): string => {
  if (text.trim() === '') throw new InvalidArgumentError('Expected a file path, not an empty string.');
  if (statSync(text, { throwIfNoEntry: false })?.isDirectory()) throw new InvalidArgumentError(`Expected a file path; ${text} is a folder.`);
  return text;
};

/** The TLS folder: --dir, or <TAPFLOW_DATA_DIR>/tls. */
async function tlsDir(dir: string | undefined): Promise<string> {
  if (dir) return dir;
  const { loadConfig } = await import('../config/config.js');
  const { join } = await import('node:path');
  return join(loadConfig().TAPFLOW_DATA_DIR, 'tls');
}

const collect = (parse: (t: string) => string) => (text: string, previous: string[] | undefined) => [...(previous ?? []), ...text.split(',').map((t) => parse(t.trim()))];

export function registerCertsCommands(program: Command): void {
  const group = program.command('certs').description("mutual TLS for terminals: a test fleet CA, the ingest server's certificate, terminal certificates, revocation");
  const dirOption = () => new Option('--dir <folder>', 'the TLS folder (ca.pem, ca.key, server.pem, server.key, revoked.txt, terminals/); default <TAPFLOW_DATA_DIR>/tls').argParser(folder);

  group
    .command('init')
    .summary('create a fleet CA (kept if there) and the ingest server certificate')
    .description(
      'create a fleet CA in the folder unless one is there (ca.pem, ca.key), a server certificate signed by it for the given host names and addresses (server.pem, server.key) unless one is there or --reissue-server, and an empty revocation list (revoked.txt). Point TAPFLOW_TLS_CA_FILE, TAPFLOW_TLS_CERT_FILE and TAPFLOW_TLS_KEY_FILE at them (the data dir\'s tls folder is used without them).',
    )
    .addOption(dirOption())
    .addOption(new Option('--host <names>', 'host names and IPv4 addresses of the server certificate, comma-separated (repeatable); default localhost, 127.0.0.1 and this host name').argParser(collect(hostName)))
    .addOption(new Option('--days <n>', 'validity of the server certificate').argParser(days).default(825))
    .addOption(new Option('--ca-days <n>', 'validity of a new CA').argParser(days).default(3650))
    .option('--reissue-server', 'issue a new server certificate even if one is there')
    .action(async (flags: { dir?: string; host?: string[]; days: number; caDays: number; reissueServer?: boolean }) => {
      const { initTlsDir } = await import('../ingest/tls.js');
      const { X509Certificate } = await import('node:crypto');
      const { readFileSync } = await import('node:fs');
      const dir = await tlsDir(flags.dir);
      const p = initTlsDir(dir, { ...(flags.host && { hosts: flags.host }), days: flags.days, caDays: flags.caDays, reissueServer: flags.reissueServer === true });
      const ca = new X509Certificate(readFileSync(p.caCert));
      const srv = new X509Certificate(readFileSync(p.serverCert));
      console.log(`CA ${p.createdCa ? 'created' : 'kept'}: ${p.caCert} (key ${p.caKey}, 0600), ${ca.subject.replace(/\n/g, ', ')}, serial ${ca.serialNumber}, valid until ${new Date(ca.validTo).toISOString()}`);
      console.log(`server certificate ${p.createdServer ? 'issued' : 'kept'}: ${p.serverCert} (key ${p.serverKey}, 0600), ${srv.subjectAltName}, serial ${srv.serialNumber}, valid until ${new Date(srv.validTo).toISOString()}`);
      console.log(`revocation list: ${p.revoked}`);
    });

  group
    .command('terminal')
    .summary('issue terminal certificates from the fleet CA')
    .description(
      'issue a certificate and key for each terminal id, signed by the CA in the folder: the id in the subject CN and as the URI subject alternative name urn:tapflow:terminal:<id>, which ingest reads; clientAuth. Writes <out>/<id>.pem and <id>.key (0600) and records the serial in issued.txt (for certs revoke --id).',
    )
    .addOption(dirOption())
    .addOption(new Option('--id <ids>', 'terminal ids, comma-separated (repeatable)').argParser(collect(terminalId)).makeOptionMandatory())
    .addOption(new Option('--out <folder>', 'where to write the files (default <dir>/terminals)').argParser(folder))
    .addOption(new Option('--days <n>', 'validity').argParser(days).default(365))
    .action(async (flags: { dir?: string; id: string[]; out?: string; days: number }) => {
      const { writeTerminalCert } = await import('../ingest/tls.js');
      const dir = await tlsDir(flags.dir);
      for (const id of flags.id) {
        const t = writeTerminalCert(dir, id, { days: flags.days, ...(flags.out && { outDir: flags.out }) });
        console.log(`terminal ${id}: certificate ${t.certFile}, key ${t.keyFile} (0600), serial ${t.serial}`);
      }
    });

  group
    .command('revoke')
    .summary('revoke terminal certificates (by serial or terminal id)')
    .description(
      'add certificate serials to the revocation list (revoked.txt in the folder, or --file): given with --serial, or every certificate issued to a terminal with --id (from issued.txt). A running ingest reads the list again within about a second: new calls with those certificates are refused and their open streams ended.',
    )
    .addOption(dirOption())
    .addOption(new Option('--serial <serials>', 'certificate serials (hex, as certs terminal printed them), comma-separated (repeatable)').argParser(collect(serial)))
    .addOption(new Option('--id <ids>', 'terminal ids: every certificate issued to them from this folder, comma-separated (repeatable)').argParser(collect(terminalId)))
    .addOption(new Option('--file <path>', 'the revocation list to write (default TAPFLOW_TLS_REVOKED_FILE, else <dir>/revoked.txt)').argParser(filePath))
    .action(async (flags: { dir?: string; serial?: string[]; id?: string[]; file?: string }) => {
      if (!flags.serial && !flags.id) throw new Error('--serial or --id: which certificates to revoke (give one of them)');
      const { revokeSerials, serialsIssuedTo, tlsPaths } = await import('../ingest/tls.js');
      const { normalSerial } = await import('../ingest/x509.js');
      const dir = await tlsDir(flags.dir);
      const file = flags.file ?? process.env.TAPFLOW_TLS_REVOKED_FILE ?? tlsPaths(dir).revoked;
      const targets: { serial: string; note: string }[] = [];
      for (const s of flags.serial ?? []) {
        targets.push({ serial: normalSerial(s), note: 'by serial' });
      }
      for (const id of flags.id ?? []) {
        const serials = serialsIssuedTo(dir, id);
        if (serials.length === 0) throw new Error(`--id ${id}: no certificate issued to it is recorded in ${tlsPaths(dir).issued}; revoke it by --serial`);
        for (const s of serials) targets.push({ serial: normalSerial(s), note: `terminal ${id}` });
      }
      let added = 0;
      for (const t of targets) {
        const a = revokeSerials(file, [t.serial], t.note);
        added += a.length;
        console.log(`${a.length > 0 ? 'revoked' : 'already revoked'}: serial ${t.serial} (${t.note})`);
      }
      console.log(`${added} serial(s) added to ${file}; a running ingest reads it again within about a second`);
    });
}
