// The one error the config layer throws: every problem found, each with the path of its field.

export interface ConfigIssue {
  /** Field path with dots and [i], e.g. `peers[1].endpoint`; `(file)` / `(config)` for the whole input. */
  path: string;
  message: string;
}

export class ConfigError extends Error {
  readonly issues: ConfigIssue[];

  constructor(issues: ConfigIssue[]) {
    super(issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/** True for a ConfigError, also one that crossed a module-instance boundary. */
export function isConfigError(err: unknown): err is ConfigError {
  return (
    err instanceof ConfigError ||
    (err instanceof Error && err.name === 'ConfigError' && Array.isArray((err as { issues?: unknown }).issues))
  );
}
