/**
 * Commands that manage tapflow's run-time data: issuer keys, the application project list, the
 * hotlist and the risk rules. Changes go to JetStream KV; every validator sees them within a
 * second.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, extname } from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../config/config.js';
import { generateTestKeys, serializeKeysFile, withoutPrivateKeys, ed25519Signer } from '../domain/card/keys.js';
import { makeQrBody, signQr } from '../domain/card/qr-sign.js';
import { CARD_NUMBER_PATTERN, regionOfCardNumber, tokenize } from '../domain/card/token.js';
import { HotlistReasons, diffProjectLists, parseProjectList, projectListFromData, projectListCoverage, type HotlistReason } from '../domain/validate/index.js';
import { parseDataText } from '../domain/validate/data-format.js';
import { riskRuleFromData } from '../domain/validate/risk-rules.js';
import { loadVenueDirectory } from '../domain/network/index.js';
import { localKeys } from '../runtime/keys.js';
import { readKeysFile, ensureDevTrustFile } from '../validate/trust.js';
import { getProjectListDoc, listHotlist, listRiskRules, putHotlistEntry, putProjectList, putRiskRule, removeHotlistEntry, removeRiskRule } from '../validate/data-store.js';
import { withBus } from './with-bus.js';

const formatOf = (file: string): 'yaml' | 'json' => (extname(file).toLowerCase() === '.json' ? 'json' : 'yaml');

function printJson(v: unknown): void {
  console.log(JSON.stringify(v, null, 2));
}

export function registerDataCommands(program: Command): void {
  // --- keys ---
  const keys = program.command('keys').description('card issuer keys: generate test keys, sign test QR codes');
  keys
    .command('generate')
    .description('generate chip master keys and Ed25519 QR key pairs for BJ, TJ and HE (test keys)')
    .option('--out <dir>', 'folder for issuer-keys.json (with private keys) and trust.json (public only)', '.')
    .option('--seed <text>', 'derive the keys from this text (repeatable test keys)')
    .action((flags) => {
      const k = generateTestKeys({ seed: flags.seed });
      mkdirSync(flags.out, { recursive: true });
      writeFileSync(join(flags.out, 'issuer-keys.json'), serializeKeysFile(k), { mode: 0o600 });
      writeFileSync(join(flags.out, 'trust.json'), serializeKeysFile(withoutPrivateKeys(k)));
      console.log(`wrote ${join(flags.out, 'issuer-keys.json')} (private: keep it with the issuer) and ${join(flags.out, 'trust.json')} (for TAPFLOW_TRUST_FILE); version ${k.version}`);
    });
  keys
    .command('sign-qr')
    .description('print a signed electronic-card QR payload for a card number (test codes)')
    .requiredOption('--card <number>', 'card number (11… Beijing, 12… Tianjin, 13… Hebei)')
    .option('--level <n>', 'issuance level (1 or 2)', '2')
    .option('--keys <file>', 'keys file with the issuer private key (default: the development trust file)')
    .option('--at <ms>', 'issue time, epoch ms (default now)')
    .action((flags) => {
      const cfg = loadConfig();
      if (!CARD_NUMBER_PATTERN.test(flags.card)) throw new Error(`--card: ${flags.card} is not a card number of BJ (11…), TJ (12…) or HE (13…)`);
      const file = flags.keys ?? ensureDevTrustFile(cfg);
      const k = readKeysFile(file);
      const region = regionOfCardNumber(flags.card)!;
      const priv = k.regions[region]?.qrPrivateKey;
      if (!priv) throw new Error(`${file} has no QR private key for ${region}`);
      const level = Number(flags.level);
      if (level !== 1 && level !== 2) throw new Error('--level must be 1 or 2');
      console.log(signQr(ed25519Signer, priv, makeQrBody({ cardNumber: flags.card, issuedAt: flags.at ? Number(flags.at) : Date.now(), level })));
    });

  // --- projects ---
  const projects = program.command('projects').description('the application project list (where, for which scene and form the card is accepted)');
  projects
    .command('apply <file>')
    .description('validate a project list file (YAML or JSON), show what changes, and publish it to every validator')
    .option('--dry-run', 'only show the diff')
    .action(async (file: string, flags) => {
      const cfg = loadConfig();
      const text = readFileSync(file, 'utf8');
      const next = parseProjectList(text, formatOf(file));
      const cov = projectListCoverage(next, loadVenueDirectory(cfg.TAPFLOW_TARIFF_DIR).all());
      if (cov.unmatchedItems.length > 0) console.warn(`warning: ${cov.unmatchedItems.length} item(s) match no known venue: ${cov.unmatchedItems.map((i) => i.venue).slice(0, 5).join(', ')}`);
      await withBus(cfg, async (_bus, b) => {
        const curDoc = await getProjectListDoc(b.projects);
        const diff = diffProjectLists(curDoc ? projectListFromData(curDoc) : projectListFromData({ version: 'none', items: [] }), next);
        console.log(`project list ${next.version}: +${diff.added.length} added, -${diff.removed.length} removed, ~${diff.changed.length} changed`);
        for (const i of diff.added) console.log(`  + ${i.venue} ${i.scene} [${i.forms.join(',')}]`);
        for (const i of diff.removed) console.log(`  - ${i.venue} ${i.scene}`);
        for (const c of diff.changed) console.log(`  ~ ${c.after.venue} ${c.after.scene}`);
        if (flags.dryRun) return;
        const rev = await putProjectList(b.projects, parseDataText(text, formatOf(file)));
        console.log(`applied (KV revision ${rev})`);
      });
    });
  projects
    .command('diff <file>')
    .description('show what applying the file would change')
    .action(async (file: string) => {
      await projects.commands.find((c) => c.name() === 'apply')!.parseAsync([file, '--dry-run'], { from: 'user' });
    });
  projects
    .command('list')
    .description('print the project list validators use now')
    .option('--json', 'as JSON')
    .action(async (flags) => {
      await withBus(loadConfig(), async (_bus, b) => {
        const doc = await getProjectListDoc(b.projects);
        if (!doc) return console.log('no project list applied (validators reject every tap with VENUE_NOT_LISTED)');
        const list = projectListFromData(doc);
        if (flags.json) return printJson(doc);
        console.log(`project list ${list.version}, ${list.items.length} items`);
        for (const i of list.items) console.log(`  ${i.venue}\t${i.scene}\t${i.forms.join(',')}\t${i.region}\t${i.operator}`);
      });
    });

  // --- hotlist ---
  const hotlist = program.command('hotlist').description('cards reported lost, frozen or cancelled (stored as tokens)');
  hotlist
    .command('add <card-number>')
    .description('put a card on the hotlist (a cancelled or lost physical card also blocks its QR code)')
    .requiredOption('--reason <reason>', `one of ${HotlistReasons.join(', ')}`)
    .option('--note <text>', 'free text (no personal data)')
    .option('--since <ms>', 'applies to taps from this device time (epoch ms; default now)')
    .action(async (card: string, flags) => {
      const cfg = loadConfig();
      if (!CARD_NUMBER_PATTERN.test(card)) throw new Error(`${card} is not a card number of BJ (11…), TJ (12…) or HE (13…)`);
      const reason = String(flags.reason).toUpperCase() as HotlistReason;
      if (!HotlistReasons.includes(reason)) throw new Error(`--reason must be one of ${HotlistReasons.join(', ')}`);
      const token = tokenize(localKeys(cfg).tokenKey, 'card', card);
      await withBus(cfg, async (_bus, b) => {
        await putHotlistEntry(b.hotlist, { cardToken: token, reason, since: flags.since ? Number(flags.since) : Date.now(), ...(flags.note && { note: flags.note }) });
      });
      console.log(`hotlisted card token ${token} (${reason})`);
    });
  hotlist
    .command('remove <card-number>')
    .description('take a card off the hotlist')
    .action(async (card: string) => {
      const cfg = loadConfig();
      const token = tokenize(localKeys(cfg).tokenKey, 'card', card);
      const removed = await withBus(cfg, (_bus, b) => removeHotlistEntry(b.hotlist, token));
      console.log(removed ? `removed card token ${token}` : `card token ${token} was not on the hotlist`);
    });
  hotlist
    .command('list')
    .description('print the hotlist (tokens, never card numbers)')
    .option('--json', 'as JSON')
    .action(async (flags) => {
      const entries = await withBus(loadConfig(), (_bus, b) => listHotlist(b.hotlist));
      if (flags.json) return printJson(entries);
      console.log(`${entries.length} card(s) on the hotlist`);
      for (const e of entries) console.log(`  ${e.cardToken}\t${e.reason}\tsince ${new Date(e.since).toISOString()}${e.note ? `\t${e.note}` : ''}`);
    });

  // --- risk rules ---
  const risk = program.command('risk-rules').description('risk rules as data: sliding-window aggregates with thresholds');
  risk
    .command('apply <file>')
    .description('add or change the rules of a file (YAML or JSON: {rules: [...]}) at run time')
    .action(async (file: string) => {
      const doc = parseDataText(readFileSync(file, 'utf8'), formatOf(file)) as { rules?: unknown[] };
      if (!Array.isArray(doc.rules)) throw new Error(`${file}: expected a "rules" list`);
      doc.rules.forEach((r, i) => {
        try {
          riskRuleFromData(r, `rules[${i}]`);
        } catch (err) {
          throw new Error(`${file}: ${(err as Error).message}`);
        }
      });
      await withBus(loadConfig(), async (_bus, b) => {
        for (const r of doc.rules!) {
          const rule = await putRiskRule(b.riskRules, r);
          console.log(`applied ${rule.id} (version ${rule.version})`);
        }
      });
    });
  risk
    .command('remove <id>')
    .description('remove a rule')
    .action(async (id: string) => {
      const removed = await withBus(loadConfig(), (_bus, b) => removeRiskRule(b.riskRules, id));
      console.log(removed ? `removed ${id}` : `no rule ${id}`);
    });
  risk
    .command('list')
    .description('print the rules in force')
    .action(async () => {
      const rules = await withBus(loadConfig(), (_bus, b) => listRiskRules(b.riskRules));
      printJson(rules);
    });
}
