/**
 * `tapflow bus setup|permissions|credentials`: the admin step that creates tapflow's JetStream
 * topology (the roles may not), the nats-server authorization block of the bus users
 * (src/bus/permissions.ts), and their generated passwords. The bus code loads when a command runs.
 */
import { Option, type Command } from 'commander';
import { MAX_PARTITIONS } from '../config/values.js';
import { folder, integer } from './options.js';

export function registerBusCommands(program: Command): void {
  const group = program.command('bus').description('the NATS side: the admin setup step, the bus users and their permissions');

  group
    .command('setup')
    .description('the admin step: create or update the streams, durable consumers and KV buckets (idempotent), as the admin NATS user; roles started before it exit with TF_TOPOLOGY_MISSING')
    .action(async () => {
      const { loadConfig } = await import('../config/config.js');
      const { createLogger } = await import('../observe/log.js');
      const { setupBus } = await import('../runtime/bus-setup.js');
      const { consumerPlan } = await import('../bus/topology.js');
      const { Streams, Buckets } = await import('../bus/subjects.js');
      const cfg = loadConfig();
      await setupBus(cfg, createLogger(cfg.TAPFLOW_LOG_LEVEL === 'info' ? 'warn' : cfg.TAPFLOW_LOG_LEVEL, { app: 'tapflow-cli' }));
      console.log(`topology ready on ${cfg.NATS_URL}: ${Object.keys(Streams).length} streams, ${consumerPlan(cfg.TAPFLOW_PARTITIONS).length} durable consumers (${cfg.TAPFLOW_PARTITIONS} partitions), ${Object.keys(Buckets).length} KV buckets`);
    });

  group
    .command('permissions')
    .description("print the nats-server `authorization` block: a user per role, tapflow-all for a process running several, tapflow-admin; passwords as $TAPFLOW_NATS_PASSWORD_<USER> variables nats-server reads from its environment")
    .addOption(new Option('--partitions <n>', 'partitions of the deployment (the durable consumers are per partition; default TAPFLOW_PARTITIONS)').argParser(integer(1, MAX_PARTITIONS, 'card partitions')))
    .option('--json', "print each user's publish and subscribe allow lists as JSON")
    .action(async (flags: { partitions?: number; json?: boolean }) => {
      const { loadConfig } = await import('../config/config.js');
      const { busPermissions, natsAuthorizationBlock, natsUserName, passwordVariable } = await import('../bus/permissions.js');
      const partitions = flags.partitions ?? loadConfig().TAPFLOW_PARTITIONS;
      if (flags.json) {
        const perms = busPermissions(partitions);
        return console.log(JSON.stringify(Object.fromEntries(Object.entries(perms).map(([u, p]) => [natsUserName(u as keyof typeof perms), p])), null, 2));
      }
      process.stdout.write(`# tapflow bus users for ${partitions} partitions (tapflow bus permissions); tapflow-admin may do anything.\n${natsAuthorizationBlock(partitions, (u) => `$${passwordVariable(u)}`)}`);
    });

  group
    .command('credentials')
    .argument('<dir>', 'folder to write the password files into (created 0700)', folder)
    .description('generate a password file (0600) for every bus user that has none in <dir> (existing ones are kept) and list them; point TAPFLOW_NATS_CREDS_DIR at <dir>')
    .action(async (dir: string) => {
      const { ensureCredentials, passwordFile } = await import('../bus/credentials.js');
      const { natsUserName } = await import('../bus/permissions.js');
      const pw = await ensureCredentials(dir);
      for (const u of Object.keys(pw) as (keyof typeof pw)[]) console.log(`${natsUserName(u)}\t${passwordFile(dir, u)}`);
    });
}
