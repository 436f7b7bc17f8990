/**
 * Every alert rule of prometheus/alerts.yml carries what an on-call needs: a `for`, a severity and
 * a team, a summary and a description, and a `runbook_url` pointing to its own section of
 * docs/runbook.md, which says what it means, what to look at first and how to resolve it. The
 * runbook has no section for an alert that does not exist. The check is shown to fail first.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const ROOT = join(import.meta.dirname, '..', '..', '..');

interface Rule {
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** GitHub's anchor of a Markdown heading: lower case, spaces to dashes, punctuation dropped. */
function anchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

/** Problems of the rules against the runbook (empty: all good). */
function problems(rules: Rule[], runbook: string): string[] {
  const sections = new Map<string, string>();
  const parts = runbook.split(/^## (.+)$/m);
  for (let i = 1; i < parts.length; i += 2) sections.set(anchor(parts[i]!), parts[i + 1]!);
  const out: string[] = [];
  const alerts = rules.filter((r) => r.alert);
  for (const r of alerts) {
    const name = r.alert!;
    if (r.for === undefined) out.push(`${name}: no for`);
    if (!['critical', 'warning'].includes(r.labels?.severity ?? '')) out.push(`${name}: severity ${r.labels?.severity}`);
    if (!['risk', 'operations', 'finance'].includes(r.labels?.team ?? '')) out.push(`${name}: team ${r.labels?.team}`);
    if (!r.annotations?.summary) out.push(`${name}: no summary`);
    if (!r.annotations?.description) out.push(`${name}: no description`);
    const url = r.annotations?.runbook_url ?? '';
    const m = /^docs\/runbook\.md#(.+)$/.exec(url);
    if (!m) {
      out.push(`${name}: runbook_url ${JSON.stringify(url)} is not docs/runbook.md#<section>`);
      continue;
    }
    if (m[1] !== name.toLowerCase()) out.push(`${name}: runbook_url points to #${m[1]}, not its own section`);
    const body = sections.get(m[1]!);
    if (body === undefined) {
      out.push(`${name}: no section #${m[1]} in docs/runbook.md`);
      continue;
    }
    for (const part of ['**What it means.**', '**Look first.**', '**Resolve.**']) if (!body.includes(part)) out.push(`${name}: its section lacks ${part}`);
  }
  const names = new Set(alerts.map((r) => r.alert!.toLowerCase()));
  for (const s of sections.keys()) if (s.startsWith('tapflow') && !names.has(s)) out.push(`docs/runbook.md#${s}: no such alert`);
  return out;
}

const rules = (parse(readFileSync(join(ROOT, 'prometheus', 'alerts.yml'), 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
const runbook = readFileSync(join(ROOT, 'docs', 'runbook.md'), 'utf8');

describe('ops - alert runbook', () => {
  it('the check fails on a missing for, a runbook_url elsewhere, a missing section part and a stray section', () => {
    const bad: Rule[] = [
      { alert: 'TapflowA', expr: 'x > 0', labels: { severity: 'warning', team: 'operations' }, annotations: { summary: 's', description: 'd', runbook_url: 'docs/runbook.md#tapflowa' } },
      { alert: 'TapflowB', expr: 'x > 0', for: '1m', labels: { severity: 'page', team: 'operations' }, annotations: { summary: 's', description: 'd', runbook_url: 'https://example.invalid/b' } },
    ];
    const doc = '# r\n\n## TapflowA\n\n**What it means.** x\n\n**Resolve.** y\n\n## TapflowC\n\n**What it means.** **Look first.** **Resolve.**\n';
    expect(problems(bad, doc)).toEqual([
      'TapflowA: no for',
      'TapflowA: its section lacks **Look first.**',
      'TapflowB: severity page',
      'TapflowB: runbook_url "https://example.invalid/b" is not docs/runbook.md#<section>',
      'docs/runbook.md#tapflowc: no such alert',
    ]);
  });

  it('every alert has for, severity, team, summary, description and its own runbook section', () => {
    expect(rules.filter((r) => r.alert).length).toBeGreaterThanOrEqual(20);
    expect(problems(rules, runbook)).toEqual([]);
  });
});
