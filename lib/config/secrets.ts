// The placeholder that stands where a secret was in a printed config (check, showconf).

export const REDACTED = '<redacted>';

/** What a config that still holds the placeholder is told, at the field. */
export const REDACTED_MESSAGE = `is ${REDACTED}: this config was printed without its secrets (by check, or showconf without --show-keys); put the secret back`;
