/**
 * Ingest's memory of recent (terminal_id, seq) and the content digest of the tap each one
 * carried, for taps made durable by this process. A tap whose (terminal_id, seq) is remembered is
 * answered without publishing: DUPLICATE when its digest is the same (a re-send after a lost
 * answer), INVALID "SEQ_REUSED" when it differs (a terminal reusing a seq for another tap).
 *
 * Bounded: the newest `capacity` taps over all terminals; the oldest are forgotten first (a ring
 * of insertions). Per entry about 60 bytes: 1,000,000 entries ≈ 60 MB.
 */
export class SeqMemory {
  private readonly byTerminal = new Map<string, Map<number, string>>();
  private readonly ringTerminal: (string | undefined)[];
  private readonly ringSeq: Float64Array;
  private next = 0;

  constructor(readonly capacity: number) {
    this.ringTerminal = new Array(capacity);
    this.ringSeq = new Float64Array(capacity);
  }

  /** The digest remembered for (terminalId, seq), if any. */
  get(terminalId: string, seq: number): string | undefined {
    return this.byTerminal.get(terminalId)?.get(seq);
  }

  /** Remembers a durable tap; forgets the oldest one when full. */
  remember(terminalId: string, seq: number, digest: string): void {
    if (this.capacity === 0) return;
    let seqs = this.byTerminal.get(terminalId);
    if (!seqs) this.byTerminal.set(terminalId, (seqs = new Map()));
    if (seqs.has(seq)) return;
    const slot = this.next;
    this.next = (this.next + 1) % this.capacity;
    const oldTerminal = this.ringTerminal[slot];
    if (oldTerminal !== undefined) {
      const old = this.byTerminal.get(oldTerminal);
      if (old) {
        old.delete(this.ringSeq[slot]!);
        if (old.size === 0 && oldTerminal !== terminalId) this.byTerminal.delete(oldTerminal);
      }
    }
    this.ringTerminal[slot] = terminalId;
    this.ringSeq[slot] = seq;
    seqs.set(seq, digest);
  }

  /** Taps remembered. */
  get size(): number {
    let n = 0;
    for (const m of this.byTerminal.values()) n += m.size;
    return n;
  }
}
