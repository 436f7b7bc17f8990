/**
 * Rewrites the README's generated tables (configuration, reason codes, failure codes) from the
 * code, in place: `npx tsx scripts/readme-tables.ts`. test/unit/docs/readme.test.ts checks them.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { configMarkdown } from '../src/config/config.js';
import { failuresMarkdown, reasonsMarkdown } from '../src/domain/reasons.js';

const path = new URL('../README.md', import.meta.url);
let text = readFileSync(path, 'utf8');
for (const table of [configMarkdown(), reasonsMarkdown(), failuresMarkdown()]) {
  const header = table.split('\n')[0]!;
  const lines = text.split('\n');
  const start = lines.indexOf(header);
  if (start < 0) throw new Error(`README.md has no table starting with: ${header}`);
  let end = start;
  while (end < lines.length && lines[end]!.startsWith('|')) end++;
  lines.splice(start, end - start, ...table.split('\n'));
  text = lines.join('\n');
}
writeFileSync(path, text);
