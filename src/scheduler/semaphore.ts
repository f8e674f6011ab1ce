// At most N holders; the rest wait in FIFO order.
export class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private limit: number) {}

  setLimit(limit: number) {
    this.limit = limit;
    this.dispatch();
  }

  acquire(): Promise<void> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.dispatch();
    });
  }

  /** Takes a slot only if one is free now, past nobody waiting. */
  tryAcquire(): boolean {
    if (this.active >= this.limit || this.waiting.length) return false;
    this.active += 1;
    return true;
  }

  release(): void {
    this.active -= 1;
    this.dispatch();
  }

  private dispatch() {
    while (this.active < this.limit && this.waiting.length) {
      this.active += 1;
      this.waiting.shift()!();
    }
  }
}
