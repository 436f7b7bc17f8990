/**
 * grafana/README.md lists exactly the dashboards of grafana/dashboards/*.json — uid, title, file
 * and every panel with its row, type and data source, in order — and the Grafana plugins that
 * docker-compose.yml installs are pinned to exact versions, the ClickHouse datasource's being
 * the one the README names. The comparison and the pin check are shown to fail first.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const GRAFANA = join(ROOT, 'grafana');
const README = readFileSync(join(GRAFANA, 'README.md'), 'utf8');
const CLICKHOUSE_PLUGIN = 'grafana-clickhouse-datasource';

interface Panel {
  type: string;
  title: string;
  datasource?: { type?: string };
  targets?: { datasource?: { type?: string } }[];
  panels?: Panel[];
}

/** One dashboard as the README lists it: panel lines are "row | title | type | data source". */
interface Listed {
  title: string;
  uid: string;
  file: string;
  panels: string[];
}

/** Datasource type → the name Grafana shows (provisioning/datasources/tapflow.yml). */
function datasourceNames(): Map<string, string> {
  const file = parse(readFileSync(join(GRAFANA, 'provisioning', 'datasources', 'tapflow.yml'), 'utf8')) as { datasources: { name: string; type: string }[] };
  return new Map(file.datasources.map((d) => [d.type, d.name]));
}

/** The dashboards of grafana/dashboards, in the README's shape. */
function dashboards(): Listed[] {
  const names = datasourceNames();
  const dir = join(GRAFANA, 'dashboards');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => {
      const d = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { uid: string; title: string; panels: Panel[] };
      const panels: string[] = [];
      let row = '';
      const add = (p: Panel) => {
        const types = new Set([p.datasource?.type, ...(p.targets ?? []).map((t) => t.datasource?.type)].filter((t): t is string => t !== undefined));
        const sources = [...types].sort().map((t) => names.get(t) ?? `unprovisioned ${t}`);
        panels.push([row, p.title, p.type, sources.join(' + ')].join(' | '));
      };
      for (const p of d.panels) {
        if (p.type === 'row') {
          row = p.title;
          for (const inner of p.panels ?? []) add(inner); // a collapsed row holds its panels
        } else {
          add(p);
        }
      }
      return { title: d.title, uid: d.uid, file, panels };
    });
}

/** The dashboards of the README's "## Dashboards" section. */
function listed(readme: string): Listed[] {
  const section = readme.slice(readme.indexOf('\n## Dashboards'));
  const end = section.indexOf('\n## ', 1);
  const parts = (end < 0 ? section : section.slice(0, end)).split(/^### (.+)$/m);
  const out: Listed[] = [];
  for (let i = 1; i < parts.length; i += 2) {
    const body = parts[i + 1]!;
    const ids = /^uid `([^`]+)` · file `dashboards\/([^`]+)`$/m.exec(body);
    out.push({
      title: parts[i]!.trim(),
      uid: ids?.[1] ?? '(no uid line)',
      file: ids?.[2] ?? '(no file)',
      panels: body
        .split('\n')
        .filter((l) => l.startsWith('| ') && !l.startsWith('| row |') && !l.startsWith('| --- '))
        .map((l) =>
          l
            .trim()
            .slice(1, -1)
            .split(' | ')
            .map((c) => c.trim())
            .join(' | '),
        ),
    });
  }
  return out;
}

/** Every way the README's list and the files disagree, one line each. */
function differences(readme: Listed[], files: Listed[]): string[] {
  const out: string[] = [];
  const byFile = new Map(readme.map((d) => [d.file, d]));
  for (const f of files) {
    const r = byFile.get(f.file);
    if (!r) {
      out.push(`${f.file}: not listed`);
      continue;
    }
    const before = out.length;
    if (r.uid !== f.uid) out.push(`${f.file}: uid ${f.uid}, listed as ${r.uid}`);
    if (r.title !== f.title) out.push(`${f.file}: title ${f.title}, listed as ${r.title}`);
    for (const p of f.panels) if (!r.panels.includes(p)) out.push(`${f.file}: panel not listed: ${p}`);
    for (const p of r.panels) if (!f.panels.includes(p)) out.push(`${f.file}: listed panel does not exist: ${p}`);
    if (out.length === before && r.panels.join('\n') !== f.panels.join('\n')) out.push(`${f.file}: panels listed in another order`);
  }
  for (const r of readme) if (!files.some((f) => f.file === r.file)) out.push(`${r.file}: listed, no such dashboard`);
  return out;
}

/**
 * The plugins a Grafana environment installs, each with its exact version, or a problem for
 * each one whose version is missing or floating. GF_INSTALL_PLUGINS: "id version,…";
 * GF_PLUGINS_PREINSTALL(_SYNC) (Grafana ≥ 11.5): "id@version,…".
 */
function pinnedPlugins(env: Record<string, string | undefined>): { pins: Map<string, string>; problems: string[] } {
  const pins = new Map<string, string>();
  const problems: string[] = [];
  const exact = /^\d+\.\d+\.\d+$/;
  const lists: [string, RegExp][] = [
    ['GF_INSTALL_PLUGINS', /^(\S+)(?: (\S+))?$/],
    ['GF_PLUGINS_PREINSTALL', /^([^@\s]+)(?:@(\S+))?$/],
    ['GF_PLUGINS_PREINSTALL_SYNC', /^([^@\s]+)(?:@(\S+))?$/],
  ];
  for (const [name, entry] of lists) {
    for (const item of (env[name] ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
      const m = entry.exec(item);
      if (!m || !exact.test(m[2] ?? '')) problems.push(`${name}: "${item}" has no exact version`);
      else pins.set(m[1]!, m[2]!);
    }
  }
  return { pins, problems };
}

describe('ops - grafana/README.md lists the dashboards', () => {
  const files = dashboards();

  it('every dashboard, with its uid, title and panels in order, and nothing else', () => {
    expect(files.map((f) => f.file)).toEqual(['tapflow-finance.json', 'tapflow-operations.json', 'tapflow-risk.json']);
    expect(files.every((f) => f.panels.length > 0)).toBe(true);
    expect(differences(listed(README), files)).toEqual([]);
  });

  it('the comparison fails on a panel left out, a panel that does not exist, a wrong uid and a missing dashboard', () => {
    const readme = listed(README);
    const risk = readme.find((d) => d.file === 'tapflow-risk.json')!;
    const edited = [
      { ...risk, uid: 'risk', panels: [...risk.panels.slice(1), 'Venues | Terminals gone silent | table | ClickHouse'] },
      ...readme.filter((d) => d.file !== 'tapflow-risk.json' && d.file !== 'tapflow-finance.json'),
    ];
    expect(differences(edited, files).sort()).toEqual(
      [
        'tapflow-finance.json: not listed',
        'tapflow-risk.json: uid tapflow-risk, listed as risk',
        `tapflow-risk.json: panel not listed: ${risk.panels[0]}`,
        'tapflow-risk.json: listed panel does not exist: Venues | Terminals gone silent | table | ClickHouse',
      ].sort(),
    );
  });
});

describe('ops - Grafana plugin versions are pinned', () => {
  const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
    services: { grafana: { image: string; environment: Record<string, string> } };
  };
  const grafana = compose.services.grafana;

  it('the pin check refuses a missing or floating version', () => {
    for (const floating of [CLICKHOUSE_PLUGIN, `${CLICKHOUSE_PLUGIN} latest`, `${CLICKHOUSE_PLUGIN} 4.x`, `${CLICKHOUSE_PLUGIN} ^4.8.2`, `${CLICKHOUSE_PLUGIN} 4.8`]) {
      expect(pinnedPlugins({ GF_INSTALL_PLUGINS: floating }).problems, floating).toHaveLength(1);
    }
    expect(pinnedPlugins({ GF_PLUGINS_PREINSTALL_SYNC: CLICKHOUSE_PLUGIN }).problems).toHaveLength(1);
    expect(pinnedPlugins({ GF_PLUGINS_PREINSTALL: `${CLICKHOUSE_PLUGIN}@4.8.2,grafana-clock-panel@2.1.8` })).toEqual({
      pins: new Map([
        [CLICKHOUSE_PLUGIN, '4.8.2'],
        ['grafana-clock-panel', '2.1.8'],
      ]),
      problems: [],
    });
  });

  it('docker-compose.yml installs every plugin, and every provisioned datasource plugin, at an exact version', () => {
    const { pins, problems } = pinnedPlugins(grafana.environment);
    expect(problems).toEqual([]);
    // Plugin ids are "<org>-<name>-<type>"; core datasources (prometheus) come with Grafana.
    const pluginTypes = [...datasourceNames().keys()].filter((t) => t.endsWith('-datasource'));
    expect(pluginTypes).toContain(CLICKHOUSE_PLUGIN);
    for (const t of pluginTypes) expect(pins.get(t), `${t} is provisioned but not installed at a pinned version`).toMatch(/^\d+\.\d+\.\d+$/);
    // provisioning/datasources/tapflow.yml uses the 4.x settings (host, port, protocol, …).
    expect(pins.get(CLICKHOUSE_PLUGIN)).toMatch(/^4\./);
    expect(grafana.image).toMatch(/^grafana\/grafana:\d+\.\d+\.\d+$/);
  });

  it('grafana/README.md names the pinned versions', () => {
    const version = pinnedPlugins(grafana.environment).pins.get(CLICKHOUSE_PLUGIN)!;
    expect(README).toContain(`**${CLICKHOUSE_PLUGIN} ${version}**`);
    expect(README).toContain(`\`GF_INSTALL_PLUGINS: "${CLICKHOUSE_PLUGIN} ${version}"\``);
    // The Grafana 12 alternative it gives pins the same version.
    for (const m of README.matchAll(new RegExp(`${CLICKHOUSE_PLUGIN}@(\\S+?)\`?\\s`, 'g'))) expect(m[1]).toBe(version);
    expect(README).toContain(`\`${grafana.image}\``);
  });
});
