/** The last lines a child process wrote, for error messages. */
export class OutputTail {
  private lines: string[] = [];
  private partial = '';
  constructor(private readonly max = 40) {}
  push(chunk: Buffer | string, onLine?: (line: string) => void): void {
    const text = this.partial + chunk.toString();
    const parts = text.split('\n');
    this.partial = parts.pop() ?? '';
    for (const line of parts) {
      this.lines.push(line);
      onLine?.(line);
    }
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
  }
  text(): string {
    return [...this.lines, this.partial].filter((l) => l !== '').join('\n');
  }
  /** Fatal and error lines first (nats-server tags them [FTL] / [ERR]), then the tail. */
  report(): string {
    const all = this.text();
    const important = all.split('\n').filter((l) => /\[(FTL|ERR)\]/.test(l));
    const tail = all === '' ? '(none)' : all;
    return important.length > 0 ? `${important.join('\n')}\n--- its last output ---\n${tail}` : `--- its last output ---\n${tail}`;
  }
}
