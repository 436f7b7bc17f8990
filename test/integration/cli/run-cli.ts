/**
 * Runs the tapflow CLI as a child process (`node --import tsx src/cli/main.ts …`) from the
 * repository root, as an operator would, and collects its exit code and output.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

/** The repository root: the CLI reads ./data from there, as after a clone. */
export const ROOT = join(import.meta.dirname, '..', '..', '..');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `tapflow <args>`; never rejects on a non-zero exit (tests assert the code). `input` is
 * written to its standard input (otherwise it has none).
 */
export function runCli(args: string[], env: Record<string, string | undefined> = {}, timeoutMs = 60_000, input?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      cwd: ROOT,
      env: { ...process.env, TAPFLOW_LOG_LEVEL: 'silent', ...env },
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    if (input !== undefined) child.stdin!.end(input);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tapflow ${args.join(' ')} did not finish within ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
