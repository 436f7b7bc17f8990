/**
 * Reading versioned data files (YAML or JSON) at start-up, validated by a zod schema, with error
 * messages that name the file and the field. Used by the network, venue, tariff and medical
 * loaders; never on the hot path.
 */
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { DataFileError } from './errors.js';

/** Reads a text file under the data directory; throws a {@link DataFileError} naming it. */
export function readDataText(dataDir: string, rel: string): string {
  const file = join(dataDir, rel);
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new DataFileError(displayName(dataDir, rel), `cannot read: ${(err as Error).message}`, { cause: err });
  }
}

/** Reads and validates a YAML (or JSON, a subset of YAML) data file. */
export function readDataFile<S extends z.ZodType>(dataDir: string, rel: string, schema: S): z.output<S> {
  const name = displayName(dataDir, rel);
  let raw: unknown;
  try {
    raw = parseYaml(readDataText(dataDir, rel));
  } catch (err) {
    if (err instanceof DataFileError) throw err;
    throw new DataFileError(name, `not valid YAML/JSON: ${(err as Error).message}`, { cause: err });
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
      .join('; ');
    throw new DataFileError(name, issues);
  }
  return parsed.data;
}

function displayName(dataDir: string, rel: string): string {
  const r = relative(process.cwd(), join(dataDir, rel));
  return r.startsWith('..') ? join(dataDir, rel) : r;
}
