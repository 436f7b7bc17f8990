/**
 * Commands that manage tapflow's run-time data: issuer keys, the application project list, the
 * hotlist and the risk rules. Changes go to JetStream KV; every validator sees them within a
 * second. Options and arguments are checked when parsed; the code behind each action (keys,
 * KV, data formats) is loaded when it runs.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, extname } from 'node:path';
import { Argument, InvalidArgumentError, Option, type Command } from 'commander';
import { CARD_NUMBER_PATTERN } from '../domain/card/token.js';
import { HotlistReasons, type HotlistReason } from '../domain/validate/hotlist.js';
import { existingFile, folder, instant, nonEmpty, oneOf } from './options.js';

const formatOf = (file: string): 'yaml' | 'json' => (extname(file).toLowerCase() === '.json' ? 'json' : 'yaml');

function printJson(v: unknown): void {
  console.log(JSON.stringify(v, null, 2));
}

/** A card number of BJ (11…), TJ (12…) or HE (13…). */
function cardNumber(text: string): string {
  if (!CARD_NUMBER_PATTERN.test(text)) throw new InvalidArgumentError('Expected a card number of BJ (11…), TJ (12…) or HE (13…): 9 to 18 digits or capital letters, e.g. 110105000123456.');
  return text;
}

/** Free text kept in KV: short, and no card or ID number in it (personal data stays out). */
function note(text: string): string {
  if (text.length > 200 || /\d{9,}/.test(text)) throw new InvalidArgumentError('Expected free text of at most 200 characters with no card or ID number in it (personal data stays out of the hotlist).');
  return text;
}

const config = async () => (await import('../config/config.js')).loadConfig();
const withBus = async () => (await import('./with-bus.js')).withBus;
const dataStore = () => import('../validate/data-store.js');
const fileArgument = (name: string, what: string) => new Argument(name, what).argParser(existingFile);

export function registerDataCommands(program: Command): void {
  // --- keys ---
  const keys = program.command('keys').description('card issuer keys: generate test keys, sign test QR codes');
  keys
    .command('generate')
    .description('generate chip master keys and Ed25519 QR key pairs for BJ, TJ and HE (test keys)')
    .addOption(new Option('--out <dir>', 'folder for issuer-keys.json (with private keys) and trust.json (public only)').argParser(folder).default('.'))
    .addOption(new Option('--seed <text>', 'derive the keys from this text (repeatable test keys)').argParser(nonEmpty('some text')))
    .action(async (flags: { out: string; seed?: string }) => {
      const { generateTestKeys, serializeKeysFile, withoutPrivateKeys } = await import('../domain/card/keys.js');
      const k = generateTestKeys({ seed: flags.seed });
      mkdirSync(flags.out, { recursive: true });
      writeFileSync(join(flags.out, 'issuer-keys.json'), serializeKeysFile(k), { mode: 0o600 });
      writeFileSync(join(flags.out, 'trust.json'), serializeKeysFile(withoutPrivateKeys(k)));
      console.log(`wrote ${join(flags.out, 'issuer-keys.json')} (private: keep it with the issuer) and ${join(flags.out, 'trust.json')} (for TAPFLOW_TRUST_FILE); version ${k.version}`);
    });
  keys
    .command('sign-qr')
    .description('print a signed electronic-card QR payload for a card number (test codes)')
    .addOption(new Option('--card <number>', 'card number (11… Beijing, 12… Tianjin, 13… Hebei)').argParser(cardNumber).makeOptionMandatory())
    .addOption(new Option('--level <n>', 'issuance level: 1 or 2 (only level 2 may pay)').choices(['1', '2']).default('2'))
    .addOption(new Option('--keys <file>', 'keys file with the issuer private key (default: the development trust file)').argParser(existingFile))
    .addOption(new Option('--at <time>', 'issue time: epoch ms or ISO 8601 (Asia/Shanghai when no zone); default now').argParser(instant))
    .action(async (flags: { card: string; level: string; keys?: string; at?: number }) => {
      const cfg = await config();
      const { ed25519Signer } = await import('../domain/card/keys.js');
      const { makeQrBody, signQr } = await import('../domain/card/qr-sign.js');
      const { regionOfCardNumber } = await import('../domain/card/token.js');
      const { readKeysFile, ensureDevTrustFile } = await import('../validate/trust.js');
      const file = flags.keys ?? ensureDevTrustFile(cfg);
      const k = readKeysFile(file);
      const region = regionOfCardNumber(flags.card)!;
      const priv = k.regions[region]?.qrPrivateKey;
      if (!priv) throw new Error(`--keys: ${file} has no QR private key for ${region}`);
      console.log(signQr(ed25519Signer, priv, makeQrBody({ cardNumber: flags.card, issuedAt: flags.at ?? Date.now(), level: flags.level === '1' ? 1 : 2 })));
    });

  // --- projects ---
  const projects = program.command('projects').description('the application project list (where, for which scene and form the card is accepted)');
  const applyProjects = async (file: string, dryRun: boolean, json: boolean) => {
    const cfg = await config();
    const { diffProjectLists, parseProjectList, projectListFromData, projectListCoverage } = await import('../domain/validate/index.js');
    const { parseDataText } = await import('../domain/validate/data-format.js');
    const { loadVenueDirectory } = await import('../domain/network/index.js');
    const { getProjectListDoc, putProjectList } = await dataStore();
    const text = readFileSync(file, 'utf8');
    const next = parseProjectList(text, formatOf(file));
    const cov = projectListCoverage(next, loadVenueDirectory(cfg.TAPFLOW_TARIFF_DIR).all());
    if (cov.unmatchedItems.length > 0) console.warn(`warning: ${cov.unmatchedItems.length} item(s) match no known venue: ${cov.unmatchedItems.map((i) => i.venue).slice(0, 5).join(', ')}`);
    await (await withBus())(cfg, async (_bus, b) => {
      const curDoc = await getProjectListDoc(b.projects);
      const diff = diffProjectLists(curDoc ? projectListFromData(curDoc) : projectListFromData({ version: 'none', items: [] }), next);
      const rev = dryRun ? undefined : await putProjectList(b.projects, parseDataText(text, formatOf(file)));
      if (json) return printJson({ version: next.version, added: diff.added, removed: diff.removed, changed: diff.changed, ...(rev !== undefined && { kvRevision: rev }) });
      console.log(`project list ${next.version}: +${diff.added.length} added, -${diff.removed.length} removed, ~${diff.changed.length} changed`);
      for (const i of diff.added) console.log(`  + ${i.venue} ${i.scene} [${i.forms.join(',')}]`);
      for (const i of diff.removed) console.log(`  - ${i.venue} ${i.scene}`);
      for (const c of diff.changed) console.log(`  ~ ${c.after.venue} ${c.after.scene}`);
      if (rev !== undefined) console.log(`applied (KV revision ${rev})`);
    });
  };
  projects
    .command('apply')
    .addArgument(fileArgument('<file>', 'project list (YAML or JSON; format in data/projects/README.md)'))
    .description('validate a project list file (YAML or JSON), show what changes, and publish it to every validator')
    .option('--dry-run', 'only show the diff')
    .option('--json', 'print the diff as JSON')
    .action((file: string, flags: { dryRun?: boolean; json?: boolean }) => applyProjects(file, flags.dryRun === true, flags.json === true));
  projects
    .command('diff')
    .addArgument(fileArgument('<file>', 'project list (YAML or JSON)'))
    .description('show what applying the file would change')
    .option('--json', 'print the diff as JSON')
    .action((file: string, flags: { json?: boolean }) => applyProjects(file, true, flags.json === true));
  projects
    .command('list')
    .description('print the project list validators use now')
    .option('--json', 'as JSON')
    .action(async (flags: { json?: boolean }) => {
      const { projectListFromData } = await import('../domain/validate/index.js');
      const { getProjectListDoc } = await dataStore();
      await (await withBus())(await config(), async (_bus, b) => {
        const doc = await getProjectListDoc(b.projects);
        if (!doc) return flags.json ? printJson(null) : console.log('no project list applied (validators reject every tap with VENUE_NOT_LISTED)');
        const list = projectListFromData(doc);
        if (flags.json) return printJson(doc);
        console.log(`project list ${list.version}, ${list.items.length} items`);
        for (const i of list.items) console.log(`  ${i.venue}\t${i.scene}\t${i.forms.join(',')}\t${i.region}\t${i.operator}`);
      });
    });

  // --- hotlist ---
  const cardToken = async (card: string) => {
    const cfg = await config();
    const { localKeys } = await import('../runtime/keys.js');
    const { tokensOf } = await import('../domain/card/token-keys.js');
    // The current key version's token; during a rotation overlap also the previous versions'.
    const t = tokensOf(localKeys(cfg).tokenKeys, 'card', card, 1);
    return { cfg, token: t.token, previous: t.previous };
  };
  const hotlist = program.command('hotlist').description('cards reported lost, frozen or cancelled (stored as tokens)');
  hotlist
    .command('add')
    .addArgument(new Argument('<card-number>', 'card number (11… Beijing, 12… Tianjin, 13… Hebei)').argParser(cardNumber))
    .description('put a card on the hotlist (a cancelled or lost physical card also blocks its QR code)')
    .addOption(new Option('--reason <reason>', `one of ${HotlistReasons.join(', ')}`).argParser(oneOf(HotlistReasons)).makeOptionMandatory())
    .addOption(new Option('--note <text>', 'free text, at most 200 characters (no personal data)').argParser(note))
    .addOption(new Option('--since <time>', 'applies to taps from this device time: epoch ms or ISO 8601 (Asia/Shanghai when no zone); default now').argParser(instant))
    .action(async (card: string, flags: { reason: HotlistReason; note?: string; since?: number }) => {
      const { cfg, token } = await cardToken(card);
      const { putHotlistEntry } = await dataStore();
      await (await withBus())(cfg, async (_bus, b) => {
        await putHotlistEntry(b.hotlist, { cardToken: token, reason: flags.reason, since: flags.since ?? Date.now(), ...(flags.note && { note: flags.note }) });
      });
      console.log(`hotlisted card token ${token} (${flags.reason})`);
    });
  hotlist
    .command('remove')
    .addArgument(new Argument('<card-number>', 'card number').argParser(cardNumber))
    .description('take a card off the hotlist')
    .action(async (card: string) => {
      const { cfg, token, previous } = await cardToken(card);
      const { removeHotlistEntry } = await dataStore();
      // During a rotation overlap an entry made under a previous key version is taken off too.
      const removed = await (await withBus())(cfg, async (_bus, b) => {
        let any = await removeHotlistEntry(b.hotlist, token);
        for (const t of previous) any = (await removeHotlistEntry(b.hotlist, t)) || any;
        return any;
      });
      console.log(removed ? `removed card token ${token}` : `card token ${token} was not on the hotlist`);
    });
  hotlist
    .command('list')
    .description('print the hotlist (tokens, never card numbers)')
    .option('--json', 'as JSON')
    .action(async (flags: { json?: boolean }) => {
      const { listHotlist } = await dataStore();
      const entries = await (await withBus())(await config(), (_bus, b) => listHotlist(b.hotlist));
      if (flags.json) return printJson(entries);
      console.log(`${entries.length} card(s) on the hotlist`);
      for (const e of entries) console.log(`  ${e.cardToken}\t${e.reason}\tsince ${new Date(e.since).toISOString()}${e.note ? `\t${e.note}` : ''}`);
    });

  // --- risk rules ---
  const risk = program.command('risk-rules').description('risk rules as data: sliding-window aggregates with thresholds');
  risk
    .command('apply')
    .addArgument(fileArgument('<file>', 'risk rules (YAML or JSON: {rules: [...]}; format in data/risk-rules/README.md)'))
    .description('add or change the rules of a file at run time')
    .action(async (file: string) => {
      const { parseDataText } = await import('../domain/validate/data-format.js');
      const { riskRuleFromData } = await import('../domain/validate/risk-rules.js');
      const { putRiskRule } = await dataStore();
      const doc = parseDataText(readFileSync(file, 'utf8'), formatOf(file)) as { rules?: unknown[] };
      if (!Array.isArray(doc.rules)) throw new Error(`${file}: expected a "rules" list`);
      doc.rules.forEach((r, i) => {
        try {
          riskRuleFromData(r, `rules[${i}]`);
        } catch (err) {
          throw new Error(`${file}: ${(err as Error).message}`);
        }
      });
      await (await withBus())(await config(), async (_bus, b) => {
        for (const r of doc.rules!) {
          const rule = await putRiskRule(b.riskRules, r);
          console.log(`applied ${rule.id} (version ${rule.version})`);
        }
      });
    });
  risk
    .command('remove')
    .addArgument(new Argument('<id>', 'rule id').argParser(nonEmpty('a rule id')))
    .description('remove a rule')
    .action(async (id: string) => {
      const { removeRiskRule } = await dataStore();
      const removed = await (await withBus())(await config(), (_bus, b) => removeRiskRule(b.riskRules, id));
      console.log(removed ? `removed ${id}` : `no rule ${id}`);
    });
  risk
    .command('list')
    .description('print the rules in force')
    .option('--json', 'as JSON (the rules as applied)')
    .action(async (flags: { json?: boolean }) => {
      const { listRiskRules } = await dataStore();
      const { riskRuleFromData, formatDuration } = await import('../domain/validate/risk-rules.js');
      const rules = await (await withBus())(await config(), (_bus, b) => listRiskRules(b.riskRules));
      if (flags.json) return printJson(rules);
      console.log(`${rules.length} rule(s) in force`);
      for (const raw of rules) {
        const r = riskRuleFromData(raw);
        console.log(`  ${r.id}\tv${r.version}\t${r.keyKind}\t${r.metric} > ${r.threshold} over ${formatDuration(r.windowMs)}\t${r.severity}${r.enabled ? '' : '\t(disabled)'}`);
      }
    });
}
