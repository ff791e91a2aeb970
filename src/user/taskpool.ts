// Fire-and-forget work with bounded concurrency, for best-effort RPCs
// (presence and typing) that must never hold up the frame that caused them.
// Production lets an object wait on only 6 subrequests at once, so the pools
// stay at or below that. Failures are logged and forgotten: nothing here is
// retried (the outbox is for what must arrive).

export class TaskPool {
  private running = 0;
  private readonly queue: Array<() => Promise<unknown>> = [];

  constructor(
    private readonly name: string,
    private readonly concurrency: number,
    private readonly maxQueued: number,
  ) {}

  /** Tasks waiting for a slot: the pool's backlog, used by the load-shedding rule. */
  get backlog(): number {
    return this.queue.length;
  }

  /** Runs the task when a slot frees up. Returns false (task dropped) when the queue is full. */
  submit(task: () => Promise<unknown>): boolean {
    if (this.running < this.concurrency) {
      this.start(task);
      return true;
    }
    if (this.queue.length >= this.maxQueued) return false;
    this.queue.push(task);
    return true;
  }

  private start(task: () => Promise<unknown>): void {
    this.running++;
    void task()
      .catch((err: unknown) => console.warn(`${this.name} failed`, String(err)))
      .finally(() => {
        this.running--;
        const next = this.queue.shift();
        if (next) this.start(next);
      });
  }
}
