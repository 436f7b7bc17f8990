/** Credentials kept out of messages. */

/** The URL without credentials, for error messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return '<malformed ClickHouse URL>';
  }
}
