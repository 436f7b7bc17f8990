import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// npm 11 skips a dependency's install scripts unless package.json's allowScripts names it, and
// `npm ci` then ends with a warning listing them. tapflow decides for each one explicitly (the
// README says why none is needed), so a new dependency with an install script shows up here
// rather than as a new warning on a new user's first `npm ci`.

const root = join(import.meta.dirname, '..', '..', '..');
const LIFECYCLE = ['preinstall', 'install', 'postinstall'];

function packagesWithInstallScripts(dir: string, out: Set<string>): Set<string> {
  if (!existsSync(dir)) return out;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.name.startsWith('@')) {
      packagesWithInstallScripts(path, out);
      continue;
    }
    const manifest = join(path, 'package.json');
    if (existsSync(manifest)) {
      const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string; scripts?: Record<string, string> };
      if (pkg.name && LIFECYCLE.some((s) => pkg.scripts?.[s] !== undefined)) out.add(pkg.name);
    }
    packagesWithInstallScripts(join(path, 'node_modules'), out);
  }
  return out;
}

describe('install scripts', () => {
  it("every installed dependency with an install script has a decision in package.json's allowScripts", () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { allowScripts?: Record<string, boolean> };
    const decided = new Set(Object.keys(pkg.allowScripts ?? {}).map((k) => k.replace(/(.)@[^@]*$/, '$1')));
    const found = packagesWithInstallScripts(join(root, 'node_modules'), new Set());
    expect(found.size).toBeGreaterThan(0); // chdb's empty script at least: the walk sees packages
    expect([...found].filter((name) => !decided.has(name)).sort()).toEqual([]);
  });
});
