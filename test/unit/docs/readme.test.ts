/** The README's tables are generated from the code: they must say what is true now. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configMarkdown } from '../../../src/config/config.js';
import { failuresMarkdown, reasonsMarkdown } from '../../../src/domain/reasons.js';

const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');

describe('README - generated tables', () => {
  it('has the configuration table of src/config/config.ts (tapflow config --markdown)', () => {
    expect(readme).toContain(configMarkdown());
  });
  it('has the reason and failure code tables of src/domain/reasons.ts (tapflow reasons)', () => {
    expect(readme).toContain(reasonsMarkdown());
    expect(readme).toContain(failuresMarkdown());
  });
  it('gives the two quick-start commands', () => {
    expect(readme).toMatch(/npm ci && npm start/);
    expect(readme).toMatch(/^npm test/m);
  });
});
