/**
 * Ends a command with a chosen exit status after its answer is printed, e.g. 2 when a quoted
 * claim is refused. Not an error: the CLI prints nothing more (src/cli/main.ts).
 */
export class ExitStatus extends Error {
  override readonly name = 'ExitStatus';
  constructor(readonly code: number) {
    super(`exit status ${code}`);
  }
}
