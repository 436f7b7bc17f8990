-- tapflow 0005: the link between a card's tokens across a token key rotation.
--
-- Tokens name their key version (src/domain/card/token-keys.ts, README "Token key rotation"):
-- rows stored before a rotation carry the card's old token, rows stored after it the new one.
-- During the overlap each decision also carries the card's tokens under the previous key
-- versions (newest first), which the validator used to move the card's state; stored here, they
-- link a card's old token to its new one, so its history is joined across the rotation:
--   SELECT DISTINCT arrayJoin(previous_card_tokens) AS old_token, card_token AS new_token
--   FROM decisions WHERE notEmpty(previous_card_tokens)
-- Cards not seen during the overlap have no link (tapflow keeps no card numbers to make one).
--
-- New column of decisions:
-- * previous_card_tokens Array(String) DEFAULT [] — empty outside a rotation overlap.
--
-- Idempotent (ADD COLUMN IF NOT EXISTS); a metadata change, existing parts are not rewritten.

ALTER TABLE decisions ADD COLUMN IF NOT EXISTS previous_card_tokens Array(String) DEFAULT [] AFTER card_token;
