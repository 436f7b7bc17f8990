// Copies the non-TypeScript files the compiled code reads next to it (descriptor set, SQL migrations,
// the dashboards whose ClickHouse queries `tapflow report` runs).
import { cpSync, mkdirSync } from 'node:fs';
mkdirSync('dist/src/gen', { recursive: true });
cpSync('src/gen/tapflow.binpb', 'dist/src/gen/tapflow.binpb');
cpSync('src/store/migrations', 'dist/src/store/migrations', { recursive: true });
cpSync('grafana/dashboards', 'dist/grafana/dashboards', { recursive: true });
