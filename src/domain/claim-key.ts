/**
 * A claim's key: claim ids are chosen by institutions (any text up to 128 characters), so
 * subjects, KV keys and message ids name a claim by the first 40 hex digits of the SHA-256 of
 * its id instead.
 */
import { createHash } from 'node:crypto';

export function claimKey(claimId: string): string {
  return createHash('sha256').update(claimId).digest('hex').slice(0, 40);
}
