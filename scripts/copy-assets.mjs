// Copies the non-TypeScript files the compiled code reads next to it (descriptor set, SQL migrations).
import { cpSync, mkdirSync } from 'node:fs';
mkdirSync('dist/src/gen', { recursive: true });
cpSync('src/gen/tapflow.binpb', 'dist/src/gen/tapflow.binpb');
cpSync('src/store/migrations', 'dist/src/store/migrations', { recursive: true });
