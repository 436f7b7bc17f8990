/**
 * Token key rotation in the pure validator: during an overlap a tap carries the card's tokens
 * under the previous key versions; a hotlist entry made under one of them still blocks the card,
 * and the decision carries them on (for the settler and the store).
 */
import { describe, expect, it } from 'vitest';
import { Hotlist } from '../../../src/domain/validate/index.js';
import { CARD_BJ, CARD_TJ, chipTap, T0, tokenOf, validatorData, decideNew as decideTap } from './fixtures.js';

const NEW = (card: string) => `k2.${tokenOf(card).split('').reverse().join('')}`;

describe('decide - token key versions', () => {
  const d = validatorData({ hotlist: new Hotlist([{ cardToken: tokenOf(CARD_BJ), reason: 'LOST', since: T0 - 60_000 }], 'hot-v1') });

  it('a hotlist entry under a previous version still blocks the card during the overlap', () => {
    const t = chipTap({ counter: 1 });
    const rotated = { ...t.tap, cardToken: NEW(CARD_BJ), previousCardTokens: [tokenOf(CARD_BJ)] };
    const r = decideTap(d, undefined, rotated, t.creds, T0);
    expect(r.decision.reason).toBe('HOTLIST_LOST');
    expect(r.decision.cardToken).toBe(NEW(CARD_BJ));
    expect(r.decision.previousCardTokens).toEqual([tokenOf(CARD_BJ)]);
  });

  it('without the previous token (version retired) the old entry no longer matches; other cards are not affected', () => {
    const t = chipTap({ counter: 1 });
    expect(decideTap(d, undefined, { ...t.tap, cardToken: NEW(CARD_BJ) }, t.creds, T0).decision.reason).toBe('OK');
    const other = chipTap({ card: CARD_TJ, counter: 1 });
    const r = decideTap(d, undefined, { ...other.tap, cardToken: NEW(CARD_TJ), previousCardTokens: [tokenOf(CARD_TJ)] }, other.creds, T0);
    expect(r.decision.reason).toBe('OK');
    expect(r.decision.previousCardTokens).toEqual([tokenOf(CARD_TJ)]);
  });
});
