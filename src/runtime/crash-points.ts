/**
 * Test hook for the redelivery guarantees: with TAPFLOW_TEST_CRASH="<role>:<point>:<n>" in its
 * environment, this process kills itself with SIGKILL the n-th time a batch of <role> reaches
 * <point> — between the steps of a batch, where a real crash would leave outputs published but
 * the state not written ("after-outputs"), or the state written but the input not acknowledged
 * ("after-commit"). test/integration/replicas uses it. Not a setting: unset, it costs one
 * comparison per batch.
 */
export type CrashPoint = 'after-outputs' | 'after-commit';

const spec = /^(\w+):(after-outputs|after-commit):(\d+)$/.exec(process.env.TAPFLOW_TEST_CRASH ?? '');
let passes = 0;

export function crashPoint(role: string, point: CrashPoint): void {
  if (!spec || spec[1] !== role || spec[2] !== point) return;
  if (++passes < Number(spec[3])) return;
  process.stderr.write(`${JSON.stringify({ level: 50, msg: 'TAPFLOW_TEST_CRASH: killing this process', role, point, batch: passes })}\n`);
  process.kill(process.pid, 'SIGKILL');
}
