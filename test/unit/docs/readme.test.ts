/** The README's tables are generated from the code: they must say what is true now. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configMarkdown } from '../../../src/config/config.js';
import { failuresMarkdown, reasonsMarkdown } from '../../../src/domain/reasons.js';

const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
const ciRun = readFileSync(new URL('../../../.ci/run', import.meta.url), 'utf8');

/** The commands of the first ```sh block after "## Quick start", comments dropped, `&&` split. */
function quickStartCommands(): string[] {
  const section = readme.slice(readme.indexOf('## Quick start'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  return block
    .split('\n')
    .map((l) => l.replace(/#.*$/, '').trim())
    .filter(Boolean)
    .flatMap((l) => l.split('&&').map((c) => c.trim()));
}

/** The commands .ci/run runs at the top level (not inside a function, not comments). */
function ciCommands(): string[] {
  return ciRun
    .split('\n')
    .filter((l) => /^\S/.test(l) && !l.startsWith('#'))
    .map((l) => l.trim());
}

describe('README - generated tables', () => {
  it('has the configuration table of src/config/config.ts (tapflow config --markdown)', () => {
    expect(readme).toContain(configMarkdown());
  });
  it('has the reason and failure code tables of src/domain/reasons.ts (tapflow reasons)', () => {
    expect(readme).toContain(reasonsMarkdown());
    expect(readme).toContain(failuresMarkdown());
  });
});

describe('README - quick start and CI', () => {
  it('gives the two quick-start commands: install and start, then test', () => {
    expect(quickStartCommands()).toEqual(['npm ci', 'npm start', 'npm test']);
  });

  it('.ci/run installs and tests with exactly the quick-start commands', () => {
    const [install, , test] = quickStartCommands();
    const ci = ciCommands();
    expect(ci).toContain(install);
    expect(ci).toContain(test);
    expect(ci.indexOf(install!)).toBeLessThan(ci.indexOf(test!));
  });

  it('.ci/run leaves nats-server and promtool to the test setup, as on a new user\'s machine', () => {
    // If CI installed them itself, a broken install in the test setup would pass CI and fail users.
    expect(ciRun).not.toMatch(/apt-get install[^\n]*\b(nats-server|prometheus)\b/);
  });
});
